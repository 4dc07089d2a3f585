"""The release pipeline end to end, on the stack provisioned by site.yml (../converge.yml).

The tests run in file order and build on each other, like an operator's day: release
four builds of the sample app to the index, deploy 1.0.0, deploy 1.1.0 under load, try
a build that cannot start and one that starts unhealthy, lose a race for the deploy lock,
roll back. Each stage runs its playbook once (module fixtures); the checks then look at
every web host, through nginx over HTTP.

The tests do not use testinfra's `host` fixture: it is parametrized per module, and
pytest would then run every stage for one host before the other. They loop over `web`.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
from awx_runner import SANDBOX_VAULT, awx_job_vars, run_job, stats_data, stdout
from sandbox_support import PROJECT, recap, run_playbook
from stack_support import (WEB, canary_left, deploy, deploy_log, deploy_under_load, deploy_with, get, gunicorn_pids,
                           link, load, masters, record, releases_running, serving)

BUILDS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0"]


# --- releasing to the index -------------------------------------------------------

@pytest.fixture(name="wheels", scope="module")
def fixture_wheels(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([str(PROJECT / "examples/webxample/build-releases"), str(out), *BUILDS], check=True,
                   capture_output=True, text=True)
    return {v: next(out.glob(f"webxample-{v}-*.whl")) for v in BUILDS}


@pytest.fixture(name="released", scope="module")
def fixture_released(scenario_dir, wheels):
    results = {v: run_playbook(scenario_dir, PROJECT / "playbooks/publish.yml", extra_vars={"publish_wheel": str(w)})
               for v, w in wheels.items()}
    again = run_playbook(scenario_dir, PROJECT / "playbooks/publish.yml", extra_vars={"publish_wheel": str(wheels["1.0.0"])})
    return results, again


def test_builds_are_released_once(released):
    results, again = released
    for version, result in results.items():
        assert result.returncode == 0, f"{version}: {result.stdout[-3000:]}"
    assert again.returncode != 0
    assert "1.0.0" in again.stdout and "already" in again.stdout, again.stdout[-3000:]


def test_the_index_answers_only_through_its_tls_front(web, released):
    """The releases were uploaded over HTTPS (publish.yml, trusting the sandbox's CA).
    From a web host: devpi-server itself (port 3141) is not reachable, plain HTTP redirects
    to HTTPS, and over HTTPS (the host trusts the CA) devpi knows its outside URL."""
    host = web[WEB[0]]
    direct = host.run("curl -sS -o /dev/null --max-time 10 http://stack-index:3141/+api")
    assert direct.rc == 7, direct  # connection refused: devpi-server listens on loopback
    redirect = host.check_output("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "
                                 "http://stack-index/acme/prod/+simple/")
    assert redirect == "301 https://stack-index/acme/prod/+simple/"
    api = json.loads(host.check_output("curl -sSf https://stack-index/+api"))
    assert api["result"]["login"] == "https://stack-index/+login", api


# --- first deploy -----------------------------------------------------------------

@pytest.fixture(name="first", scope="module")
def fixture_first(scenario_dir, released):
    return [deploy(scenario_dir, "1.0.0", app) for app in ("webxample", "shop")]


def test_first_deploy_serves_its_version_through_nginx(web, first):
    for name, host in web.items():
        for result in first:
            assert result.returncode == 0, result.stdout[-4000:]
        status, page = get(host, "/")
        assert status == 200 and "Version <strong>1.0.0</strong>" in page
        assert serving(host) == "1.0.0" and serving(host, "shop.test") == "1.0.0"
        assert link(host, "webxample", "current") == "1.0.0"


def test_static_files_come_from_the_release(web, first):
    for name, host in web.items():
        status, _ = get(host, "/static/webxample/style.css")
        assert status == 200, name
        served = host.check_output("curl -s -H 'Host: webxample.test' http://127.0.0.1/static/webxample/style.css | sha256sum")
        on_disk = host.check_output("sha256sum < /srv/apps/webxample/releases/1.0.0/static/webxample/style.css")
        assert served == on_disk, name


def test_each_app_runs_as_its_own_user(web, first):
    for name, host in web.items():
        # numprocesses masters with 2 workers each (inventory/group_vars/web/apps.yml).
        for app, processes in (("webxample", 4), ("shop", 1)):
            pids = gunicorn_pids(host, app)
            assert len(pids) == processes * 3, f"{app}: {processes} masters with 2 workers each expected, got {pids}"
            assert host.check_output(f"ps -o user= -p {','.join(map(str, pids))} | sort -u") == app
        # Code is root's; only shared/ is the app's.
        assert host.file("/srv/apps/webxample/releases/1.0.0/venv").user == "root"
        assert host.file("/srv/apps/webxample/shared").user == "webxample"


def test_each_app_socket_listens_with_its_backlog(web, first):
    # What the kernel holds for the sockets Circus listens on (Send-Q of a listening
    # socket): shop sets backlog 1024 (the scenario's inventory), webxample keeps 2048.
    for name, host in web.items():
        with host.sudo():
            out = host.check_output("ss -lxH")
        backlogs = {f[4]: int(f[3]) for f in (line.split() for line in out.splitlines())
                    if len(f) > 4 and f[4].startswith("/run/circus/sockets/")}
        assert backlogs == {"/run/circus/sockets/webxample.sock": 2048, "/run/circus/sockets/shop.sock": 1024}, \
            (name, out)


def test_apps_cannot_read_each_other(web, first):
    for name, host in web.items():
        with host.sudo():
            for me, other in (("webxample", "shop"), ("shop", "webxample")):
                assert host.run(f"runuser -u {me} -- cat /etc/circus/env/{other}.env").rc != 0
                assert host.run(f"runuser -u {me} -- ls /srv/apps/{other}/shared").rc != 0
                assert host.run(f"runuser -u {me} -- cat /etc/circus/env/{me}.env").rc == 0


# --- second deploy, under load ----------------------------------------------------

@pytest.fixture(name="second", scope="module")
def fixture_second(scenario_dir, web, first):
    hosts = web
    shop_before = {name: gunicorn_pids(h, "shop") for name, h in hosts.items()}
    old_masters = {name: masters(h, "webxample") for name, h in hosts.items()}
    with load(hosts) as counts:
        result = deploy(scenario_dir, "1.1.0")
    record("deploy 1.1.0 over 1.0.0 (no fault)", counts)
    shop_after = {name: gunicorn_pids(h, "shop") for name, h in hosts.items()}
    return result, counts, shop_before, shop_after, old_masters


def test_second_deploy_switches_to_the_new_version(web, second):
    for name, host in web.items():
        result = second[0]
        assert result.returncode == 0, result.stdout[-4000:]
        assert serving(host) == "1.1.0"
        assert link(host, "webxample", "current") == "1.1.0"
        assert link(host, "webxample", "previous") == "1.0.0"
        status, page = get(host, "/")
        assert status == 200 and "Version <strong>1.1.0</strong>" in page
        running = releases_running(host, "webxample")
        assert set(running.values()) == {"1.1.0"}, f"{name}: {running}"
    # rollout_surge 2 (inventory/group_vars/web/apps.yml): the 4 processes replaced in two
    # steps of 2, each ready before 2 old ones stopped; test_no_request_failed_during_the_deploy
    # proves that no request failed across them.
    text = " ".join(second[0].stdout.split())
    steps = re.findall(r"4 new process\(es\) of 1\.1\.0 ready in [0-9.]+ s; 4 old one\(s\) stopped after that"
                       r" \([0-9.]+ s in all\), started 2 at a time", text)
    assert len(steps) == len(web), text[-4000:]


# What a process of a release imports from it, and how many of those files have no
# bytecode beside them (Python would compile them at each start: the app's user cannot
# write __pycache__ in the root-owned release).
IMPORTED_WITHOUT_BYTECODE = """
import importlib.util, os, sys
import webxample.wsgi  # the app as gunicorn loads it: Django set up, its views and models
release = os.path.dirname(os.path.dirname(sys.executable))
files = [m.__file__ for m in list(sys.modules.values())
         if (getattr(m, "__file__", None) or "").startswith(release) and m.__file__.endswith(".py")]
print(len(files), sum(not os.path.exists(importlib.util.cache_from_source(f)) for f in files))
"""


def test_the_new_release_starts_from_bytecode(web, second):
    # release_compile_bytecode: the install compiled it, lowered; the new processes, at
    # normal priority, only load it.
    for name, host in web.items():
        with host.sudo():
            out = host.check_output(
                "runuser -u webxample -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 /opt/circus/bin/circus-envexec"
                f" /etc/circus/env/webxample.env -- /srv/apps/webxample/releases/1.1.0/venv/bin/python"
                f" -c {shlex.quote(IMPORTED_WITHOUT_BYTECODE)}")
        imported, without = map(int, out.split())
        assert imported > 100 and without == 0, f"{name}: {without} of {imported} imported files have no bytecode"


def test_old_processes_stop_gracefully_with_their_workers(web, second):
    # Each old gunicorn master stopped its workers, then itself (it did not die on the
    # socket it does not own, orphaning workers that would answer with the old code).
    for name, host in web.items():
        log = host.file("/var/log/webxample/stderr.log").content_string
        for pid in second[4][name]:
            assert f"[{pid}] [INFO] Shutting down: Master" in log, f"{name}: master {pid}"
        assert "PermissionError" not in log, name


def test_no_request_failed_during_the_deploy(web, second):
    for name, host in web.items():
        load = second[1][name]
        print(f"{name}: {load}")
        assert load["ok"] > 100, load
        assert load["failed"] == 0, load
        assert set(load["versions"]) == {"1.0.0", "1.1.0"}, "the switch happened while the load ran"


def test_the_other_app_was_not_restarted(web, second):
    for name, host in web.items():
        name = name
        assert second[2][name] == second[3][name]


def test_summary_names_every_host(second):
    for name in WEB:
        assert any(name in line and "1.0.0" in line and "1.1.0" in line and "deployed" in line
                   for line in second[0].stdout.splitlines()), second[0].stdout[-3000:]


@pytest.fixture(name="repeated", scope="module")
def fixture_repeated(scenario_dir, second):
    return deploy(scenario_dir, "1.1.0")


def test_deploying_the_current_version_changes_nothing(repeated):
    assert repeated.returncode == 0, repeated.stdout[-4000:]
    changed = {h: s["changed"] for h, s in recap(repeated, WEB).items() if h in WEB}
    assert changed == {h: 0 for h in WEB}, repeated.stdout[-4000:]


# --- releases that must never serve -----------------------------------------------

@pytest.fixture(name="broken", scope="module")
def fixture_broken(scenario_dir, web, repeated):
    return deploy_under_load(scenario_dir, web, "1.2.0", "fault: the new release fails at import (1.2.0)")


def test_a_build_that_cannot_start_never_becomes_current(web, broken):
    broken, counts = broken
    for name, host in web.items():
        assert counts[name]["failed"] == 0 and counts[name]["ok"] > 0, counts
        assert set(counts[name]["versions"]) == {"1.1.0"}, counts
        assert broken.returncode != 0
        text = " ".join(broken.stdout.split())
        assert "importing webxample.wsgi failed" in text, text[-3000:]
        assert "Still serving: 1.1.0" in text
        assert serving(host) == "1.1.0"
        assert link(host, "webxample", "current") == "1.1.0"


def test_a_failed_host_stops_the_rollout(web, broken):
    for name, host in web.items():
        # serial 1 and max_fail_percentage 0: the first host failed, the second was not touched.
        attempted = host.file("/srv/apps/webxample/releases/1.2.0").exists
        assert attempted == (name == WEB[0])


@pytest.fixture(name="unhealthy", scope="module")
def fixture_unhealthy(scenario_dir, web, broken):
    return deploy_under_load(scenario_dir, {WEB[0]: web[WEB[0]]}, "1.3.0",
                             "fault: the new release fails its health check (1.3.0)")


def test_an_unhealthy_release_is_stopped_by_its_canary_before_the_switch(web, unhealthy):
    unhealthy, counts = unhealthy
    # The canary, on its own socket, answered 503: the switch never happened, so no client
    # ever got an answer from 1.3.0.
    load_seen = counts[WEB[0]]
    assert load_seen["ok"] > 0 and load_seen["failed"] == 0, load_seen
    assert set(load_seen["versions"]) == {"1.1.0"}, load_seen
    assert unhealthy.returncode != 0
    text = " ".join(unhealthy.stdout.split())
    assert ('Deploy of webxample 1.3.0 failed on stack-web12: 1.3.0 failed its canary, before the switch: '
            'GET /healthz answered 503, expected 200 naming version 1.3.0: {"version": "1.3.0", "database": "error", '
            '"error": "OperationalError: no such column: webxample_counter.') in text, text[-3000:]
    assert "The canary's last lines of output:" in text and "Still serving: 1.1.0 (untouched)." in text, text[-3000:]
    for name, host in web.items():
        assert serving(host) == "1.1.0"
        assert link(host, "webxample", "current") == "1.1.0"
        assert link(host, "webxample", "previous") == "1.0.0"
        assert canary_left(host) == ("inactive", ""), name


@pytest.fixture(name="broken_page", scope="module")
def fixture_broken_page(scenario_dir, web, unhealthy):
    return deploy_under_load(scenario_dir, web, "1.5.0", "fault: the new release is healthy but its home page fails (1.5.0)")


def test_a_release_whose_page_fails_is_stopped_by_its_smoke_path(web, broken_page):
    result, counts = broken_page
    for name, host in web.items():
        assert counts[name]["ok"] > 0 and counts[name]["failed"] == 0, counts
        assert set(counts[name]["versions"]) == {"1.1.0"}, counts
        assert serving(host) == "1.1.0" and link(host, "webxample", "current") == "1.1.0"
        assert canary_left(host) == ("inactive", ""), name
        # serial 1: the first host failed, the second was not touched.
        assert host.file("/srv/apps/webxample/releases/1.5.0").exists == (name == WEB[0])
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    # /healthz passed (200, naming 1.5.0); the smoke path / did not.
    assert ("1.5.0 failed its canary, before the switch: GET / answered 500, expected 200: "
            "<!doctype html> <html lang=\"en\"> <head> <title>Server Error (500)</title>") in text, text[-3000:]
    # The app logged why, on its stdout.
    assert "NoReverseMatch: Reverse for 'about' not found." in text, text[-3000:]


# --- a release that boots slowly ----------------------------------------------------

@pytest.fixture(name="slow", scope="module")
def fixture_slow(scenario_dir, web, broken_page):
    return deploy_under_load(scenario_dir, web, "1.6.0", "deploy 1.6.0 (8 s to boot) over 1.1.0, 4 processes")


def test_a_slow_booting_release_replaces_the_old_one_only_once_booted(web, slow):
    result, counts = slow
    assert result.returncode == 0, result.stdout[-4000:]
    text = " ".join(result.stdout.split())
    # Readiness, not a fixed warm-up: the old processes stopped only once the 4 new ones
    # had booted, which takes at least the 8 s its import sleeps.
    boots = [float(s) for s in re.findall(r"4 new process\(es\) of 1\.6\.0 ready in ([0-9.]+) s; "
                                          r"4 old one\(s\) stopped after that", text)]
    assert len(boots) == len(WEB), text[-4000:]
    assert min(boots) >= 8, boots
    for name, host in web.items():
        c = counts[name]
        assert c["ok"] > 0 and c["failed"] == 0, c
        assert set(c["versions"]) == {"1.1.0", "1.6.0"}, c
        assert serving(host) == "1.6.0"
        running = releases_running(host, "webxample")
        assert set(running.values()) == {"1.6.0"}, f"{name}: {running}"
        assert len(masters(host, "webxample")) == 4, name


# --- the deploy lock --------------------------------------------------------------

# The loser must fail at once, naming the holder, not wait for the lock. To make "at once"
# an ordering rather than a time: the winner is held with the lock taken (the release
# role's hold point "locked"), before its install step, and let go only once the second
# run has ended. A second run that waited for the lock would never end (run_playbook
# gives up after 900 s, failing the test); one that ended, refused, did so while the
# winner's install step had not even begun on the host.
INSTALL_DONE = "TASK [release : Run the checks and hooks before the switch]"  # the banner after install


@pytest.fixture(name="race", scope="module")
def fixture_race(scenario_dir, web, slow):
    lock = "/srv/apps/shop/.deploy.lock"
    first_host = web[WEB[0]]
    second, timeline = {}, []

    def run_the_second_deploy(_winner):
        second["lock_held"] = first_host.file(lock).exists
        second["result"] = deploy(scenario_dir, "1.1.0", "shop")
        second["ended"] = time.monotonic()

    with load(web, "shop.test") as counts:
        winner_out, winner_rc, fired = deploy_with(scenario_dir, "1.1.0", "shop", "locked", run_the_second_deploy, web,
                                                   timeline=timeline)
    record("fault: two deploys of the same app at once", counts)
    # A lock left by a run that was killed a moment ago on this controller: its process is gone.
    ghost = {"user": "ghost", "controller": socket.gethostname(), "pid": "999999", "version": "0.9",
             "since": "just now", "epoch": int(time.time())}
    first_host.run(f"mkdir {lock} && echo {shlex.quote(json.dumps(ghost))} > {lock}/holder.json")
    return winner_rc, winner_out, fired, second, timeline, counts


def test_a_concurrent_deploy_fails_at_once_naming_the_holder(race):
    winner_rc, winner_out, fired, second, timeline, counts = race
    assert fired and second["lock_held"], winner_out[-3000:]
    assert winner_rc == 0, winner_out[-3000:]
    loser = second["result"]
    assert loser.returncode != 0
    text = " ".join(loser.stdout.split())
    assert "is locked by another deploy" in text and "version 1.1.0" in text, text[-3000:]
    # The ordering: the second run had ended before the winner's install step finished on
    # the first host (serial 1: the host where both met; the winner went on to the second).
    install_done = [t for t, line in timeline if line.startswith(INSTALL_DONE)]
    assert len(install_done) == len(WEB), winner_out[-3000:]
    assert second["ended"] < install_done[0]
    # Only the winner installed and switched: the loser never reached either.
    for step in ("Install the app and its dependencies", "Switch previous, then current to 1.1.0"):
        assert step in winner_out
        assert step not in loser.stdout


def test_a_single_process_app_is_deployed_without_a_failed_request(web, race):
    # shop runs 1 process: the new one starts next to it, and the old one stops only once
    # the new one is ready. Both hosts were under load; the first was also where the
    # second deploy was refused.
    counts = race[5]
    for name in web:
        assert counts[name]["ok"] > 0 and counts[name]["failed"] == 0, counts
        assert set(counts[name]["versions"]) == {"1.0.0", "1.1.0"}, counts


@pytest.fixture(name="stale", scope="module")
def fixture_stale(scenario_dir, race):
    refused = deploy(scenario_dir, "1.0.0", "shop", "--limit", WEB[0])
    cleared = deploy(scenario_dir, "1.0.0", "shop", "--limit", WEB[0], "-e", "release_break_lock=true")
    return refused, cleared


def test_a_stale_lock_is_detected_and_can_be_cleared(stale):
    refused, cleared = stale
    assert refused.returncode != 0
    text = " ".join(refused.stdout.split())
    assert "locked by another deploy: ghost" in text, text[-3000:]
    assert "STALE: its process 999999 no longer runs" in text, text[-3000:]
    assert cleared.returncode == 0, cleared.stdout[-3000:]


# --- rollback ---------------------------------------------------------------------

@pytest.fixture(name="rolled_back", scope="module")
def fixture_rolled_back(scenario_dir, web, stale):
    marker = "/srv/apps/webxample/releases/1.1.0/.webdeploy-release-complete"
    installed = {name: host.file(marker).mtime for name, host in web.items()}
    unknown = deploy(scenario_dir, "9.9.9", playbook="rollback.yml")
    back, counts = deploy_under_load(scenario_dir, web, None, "rollback.yml from 1.6.0 to 1.1.0, 4 processes",
                                     playbook="rollback.yml")
    return unknown, back, installed, counts


def test_rollback_refuses_a_version_that_is_not_on_disk(rolled_back):
    unknown = rolled_back[0]
    assert unknown.returncode != 0
    text = " ".join(unknown.stdout.split())
    assert f"webxample 9.9.9 is not on {WEB[0]} (complete releases there: 1.0.0, 1.1.0" in text, text[-3000:]
    assert "changed=0" in text


def test_rollback_returns_to_the_previous_release_without_a_failed_request(web, rolled_back):
    back, counts = rolled_back[1], rolled_back[3]
    assert back.returncode == 0, back.stdout[-4000:]
    for name, host in web.items():
        assert counts[name]["ok"] > 0 and counts[name]["failed"] == 0, counts
        assert set(counts[name]["versions"]) == {"1.6.0", "1.1.0"}, counts
        assert serving(host) == "1.1.0"
        assert link(host, "webxample", "current") == "1.1.0"
        assert link(host, "webxample", "previous") == "1.6.0"
        running = releases_running(host, "webxample")
        assert set(running.values()) == {"1.1.0"}, f"{name}: {running}"
        marker = "/srv/apps/webxample/releases/1.1.0/.webdeploy-release-complete"
        assert host.file(marker).mtime == rolled_back[2][name], "the rollback reinstalled the release"


def test_deploy_log_tells_the_story(web, rolled_back):
    for name, host in web.items():
        log = deploy_log(host)
        assert [(e["action"], e["version"], e["result"].split(":")[0]) for e in log][-1] == ("rollback", "1.1.0", "ok")
        ok = [(e["action"], e["version"]) for e in log if e["result"] == "ok"]
        assert ok == [("deploy", "1.0.0"), ("deploy", "1.1.0"), ("deploy", "1.6.0"), ("rollback", "1.1.0")]
        failed = [e["version"] for e in log if e["result"] != "ok"]
        assert failed == (["1.2.0", "1.3.0", "1.5.0"] if name == WEB[0] else [])
        assert all(e["user"] and float(e["seconds"]) > 0 for e in log)
        # Run from a terminal, not by AWX: no job id (AWX's would be awx_job_id).
        assert all(e["job"] == "-" for e in log)


def test_releases_that_never_served_are_cleaned_up(web, rolled_back):
    # 1.2.0 (never installed completely), 1.3.0 and 1.5.0 (stopped by their canary) went
    # at the next cleanup; current, previous and the last used (keep_releases 3) stay.
    for name, host in web.items():
        on_disk = set(host.check_output("ls -A /srv/apps/webxample/releases").split())
        assert on_disk == {"1.0.0", "1.1.0", "1.6.0"}, f"{name}: {on_disk}"


# A process of the old release that Circus no longer tracks (here a stand-in started by
# hand) would keep answering on the shared socket: the deploy waits graceful_timeout for
# it to go (shop's is 10 s in this scenario), then treats the reload as failed.
@pytest.fixture(name="stray", scope="module")
def fixture_stray(scenario_dir, web, rolled_back):
    host = web[WEB[0]]
    with host.sudo():
        host.check_output("systemd-run --unit=stray-shop --uid=shop --collect /bin/bash -c "
                          "'exec -a /srv/apps/shop/releases/1.0.0/venv/bin/python sleep 600'")
        pid = host.check_output("systemctl show -P MainPID stray-shop")
        result = deploy(scenario_dir, "1.1.0", "shop", "--limit", WEB[0])
        host.check_output("systemctl stop stray-shop")
    return result, pid


def test_a_release_is_not_live_while_old_processes_still_answer(web, stray):
    result, pid = stray
    host = web[WEB[0]]
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert "1.1.0 failed after the switch (processes of another release still run 10 s after the reload" in text, text[-3000:]
    assert f"{pid} /srv/apps/shop/releases/1.0.0/venv/bin/python" in text, text[-3000:]
    assert "Rolled back automatically: now serving 1.0.0 (healthy)" in text, text[-3000:]
    assert serving(host, "shop.test") == "1.0.0"
    assert link(host, "shop", "current") == "1.0.0"


# --- logs -------------------------------------------------------------------------

def test_requests_are_logged_and_keep_flowing_after_rotation(web, rolled_back):
    for name, host in web.items():
        log = "/var/log/webxample/stdout.log"
        get(host, "/healthz")
        with host.sudo():
            assert "GET /healthz 200" in host.file(log).content_string, name
            host.check_output("logrotate -f /etc/logrotate.d/webxample")
            assert "GET /healthz 200" in host.file(log + ".1").content_string, name
            assert "GET /healthz" not in host.file(log).content_string, f"{name}: the live log was not rotated"
            get(host, "/healthz")
            time.sleep(1)
            assert "GET /healthz 200" in host.file(log).content_string, f"{name}: the live log went silent"


# --- check mode ---------------------------------------------------------------------
# (Bad input: test_stack_input.py.)

def module_interpreters(output):
    """The interpreter of each module run on a host that a -vvv run shows, in order: the
    last Python path of each pipelined SSH command ("... PYTHON && sleep 0")."""
    return [re.findall(r"/[\w./-]*python[\w.-]*", line)[-1] for line in output.splitlines()
            if "SSH: EXEC" in line and "&& sleep 0" in line and "python" in line]


def test_check_mode_reports_and_changes_nothing(scenario_dir, rolled_back):
    # -vvv: Ansible shows each module run's interpreter. A check-mode deploy runs only the
    # checks before the deploy lock (the app's state), and those run lowered too, through
    # the wrapper the earlier deploys installed (release_work_modules).
    result = deploy(scenario_dir, "1.6.0", "webxample", "--check", "-vvv")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1.1.0 -> 1.6.0 (check mode: nothing done)" in result.stdout
    changed = {h: s["changed"] for h, s in recap(result, WEB).items()}
    assert changed == dict.fromkeys(changed, 0), result.stdout[-3000:]
    used = module_interpreters(result.stdout)
    assert len(used) >= len(WEB), result.stdout[-3000:]  # at least the state of each host
    assert set(used) == {"/usr/local/lib/webdeploy/python3-lowered"}, used


# --- the benchmarks' smoke runs ---------------------------------------------------
# bench/ measures, it does not test; but it must not rot. Each benchmark runs once, short
# (--smoke), on the first web host, last of all. No timing is checked here: the figures
# are in docs/benchmarks.md.

def bench(scenario_dir, tmp_path_factory, script, *args):
    """(CompletedProcess, JSON report or None) of a smoke run of bench/<script>."""
    out = tmp_path_factory.mktemp("bench") / f"{script}.json"
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(PROJECT / "roles"))
    result = subprocess.run([str(PROJECT / "bench" / script), "--smoke", "-i", str(Path(scenario_dir) / "inventory"),
                             "--host-header", "webxample.test", "--out", str(out), *args],
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    return result, json.loads(out.read_text()) if out.exists() else None


@pytest.fixture(name="downtime_smoke", scope="module")
def fixture_downtime_smoke(scenario_dir, tmp_path_factory, web, stray):
    before = serving(web[WEB[0]])
    # Both set-ups: the web host's container pinned to one core, the controller and the
    # load generator to the other, then put back.
    return before, *bench(scenario_dir, tmp_path_factory, "downtime", "--host", WEB[0], "--setups", "shared,separated")


@pytest.mark.parametrize("setup", ["shared", "separated"])
def test_the_downtime_benchmark_runs(web, downtime_smoke, setup):
    before, result, report = downtime_smoke
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for label in ("baseline", "ours"):
        figures = report[setup][label]
        assert {"overall", "steady", "switch_windows", "transitions"} <= figures.keys(), label
        assert figures["overall"]["requests"] > 0, label
        assert len(figures["switches"]) == 1, f"{label}: {figures['switches']}"
        assert {"1.0.0", "1.1.0"} <= figures["versions_answered"].keys(), f"{label}: {figures['versions_answered']}"
        # The web host's CPU was read from its container's cgroup, and the deploy's share of it.
        assert figures["steady_host_busy_pct"] > 0, figures["steady_cpu"]
        assert figures["actions"][0]["cpu"]["host_total"] > 0, figures["actions"][0]
    assert report[setup]["ours"]["overall"]["failed"] == 0, report[setup]["ours"]["overall"]
    assert report[setup]["setup"]["name"] == setup
    assert serving(web[WEB[0]]) == before


def test_the_downtime_benchmark_gives_the_cores_back(web, downtime_smoke):
    _, result, report = downtime_smoke
    assert result.returncode == 0, result.stderr[-3000:]
    assert report["separated"]["setup"]["host_cpus"] == "0", report["separated"]["setup"]
    # After the run the container may use every core again (podman inspect: no cpuset).
    cpuset = subprocess.run(["podman", "inspect", "--format", "{{.HostConfig.CpusetCpus}}", WEB[0]],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert cpuset in ("", "0-1" if os.cpu_count() == 2 else f"0-{os.cpu_count() - 1}"), cpuset


@pytest.fixture(name="deploy_speed_smoke", scope="module")
def fixture_deploy_speed_smoke(scenario_dir, tmp_path_factory, downtime_smoke):
    return bench(scenario_dir, tmp_path_factory, "deploy_speed", "--hosts", WEB[0])


def test_the_deploy_speed_benchmark_runs(web, deploy_speed_smoke):
    result, report = deploy_speed_smoke
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {r["row"]: r["runs"] for r in report["table"]}
    assert set(rows) == {"floor (shell script on the host)", "fabric (seed chapter's fabfile)", "ours: deploy",
                         "ours: no-op re-deploy", "ours: rollback"}, rows
    assert all(len(runs) == 1 for runs in rows.values()), rows
    # Each way ended with 1.1.0 answering (the script waits for it); the host is left on 1.0.0.
    host = web[WEB[0]]
    assert serving(host) == "1.0.0"
    assert link(host, "webxample", "current") == "1.0.0"
    assert not host.file("/srv/apps/webxample/releases/1.1.0").exists


# --- jobs run as AWX runs them ----------------------------------------------------
# ansible-runner, the engine AWX calls, from a private data directory laid out as AWX
# lays it out (tests/awx_runner.py): the survey's answers and AWX's own variables as
# extra vars, the limit on the command line, the vault password answered at its prompt,
# the project's ansible.cfg. On the first web host, after everything else.

AWX_HOST = WEB[0]


def awx_job(scenario_dir, playbook, job_id, extravars=None, cmdline=()):
    """One job; none of the suite's ANSIBLE_* settings reach it (AWX sets none of them)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("ANSIBLE_")}
    try:
        return run_job(playbook, inventory=Path(scenario_dir) / "inventory", limit=AWX_HOST,
                       vault_passwords=SANDBOX_VAULT, cmdline=cmdline,
                       extravars={"app_name": "webxample", **awx_job_vars(job_id), **(extravars or {})})
    finally:
        os.environ.update(saved)


@pytest.fixture(name="awx_jobs", scope="module")
def fixture_awx_jobs(scenario_dir, web, deploy_speed_smoke):
    host = web[AWX_HOST]
    seen = {"before": serving(host)}
    jobs = {"deploy": awx_job(scenario_dir, "playbooks/deploy.yml", 101, {"app_version": "1.1.0"})}
    seen["deploy"], seen["log"] = serving(host), deploy_log(host)[-1]
    jobs["smoke"] = awx_job(scenario_dir, "playbooks/smoke.yml", 102, {"app_version": "1.1.0"})
    jobs["smoke of another version"] = awx_job(scenario_dir, "playbooks/smoke.yml", 103, {"app_version": "1.3.0"})
    jobs["check"] = awx_job(scenario_dir, "playbooks/deploy.yml", 104, {"app_version": "1.1.0"}, ["--check", "--diff"])
    jobs["rollback"] = awx_job(scenario_dir, "playbooks/rollback.yml", 105)
    seen["rollback"] = serving(host)
    # The workflow's failure path: Deploy, then (the smoke test failed) Revert, which gets
    # the Deploy job's set_stats data as extra vars.
    jobs["redeploy"] = awx_job(scenario_dir, "playbooks/deploy.yml", 106, {"app_version": "1.1.0"})
    jobs["revert"] = awx_job(scenario_dir, "playbooks/revert.yml", 107, stats_data(jobs["redeploy"].events))
    seen["revert"], seen["current"] = serving(host), link(host, "webxample", "current")
    return seen, jobs


def test_an_awx_deploy_job_serves_the_version_and_publishes_it(awx_jobs):
    seen, jobs = awx_jobs
    job = jobs["deploy"]
    assert (job.status, job.rc) == ("successful", 0), stdout(job.events)[-3000:]
    assert (seen["before"], seen["deploy"]) == ("1.0.0", "1.1.0")
    data = stats_data(job.events)
    assert data["webdeploy"] == {"webxample": {"deployed": "1.1.0", "previous": "1.0.0"}}, data
    assert [(r["host"], r["to"]) for r in data["webdeploy_results"]] == [(AWX_HOST, "1.1.0")], data
    # The deploy log names AWX's user and job.
    assert (seen["log"]["version"], seen["log"]["user"], seen["log"]["job"]) == ("1.1.0", "admin", "101"), seen["log"]


def test_the_awx_smoke_test_job_fails_when_another_version_answers(awx_jobs):
    _, jobs = awx_jobs
    assert jobs["smoke"].status == "successful", stdout(jobs["smoke"].events)[-3000:]
    wrong = jobs["smoke of another version"]
    assert wrong.status == "failed" and wrong.rc != 0
    assert "answered 200 with version 1.1.0" in " ".join(stdout(wrong.events).split()), stdout(wrong.events)[-3000:]


def test_an_awx_check_job_reports_no_change_on_an_up_to_date_host(awx_jobs):
    _, jobs = awx_jobs
    job = jobs["check"]
    assert job.status == "successful", stdout(job.events)[-3000:]
    # Ansible's stats list a host under "changed" only when something changed there.
    assert job.stats["ok"][AWX_HOST] > 0, job.stats
    assert AWX_HOST not in job.stats["changed"], job.stats


def test_an_awx_rollback_job_returns_to_the_previous_release(awx_jobs):
    seen, jobs = awx_jobs
    job = jobs["rollback"]
    assert (job.status, job.rc) == ("successful", 0), stdout(job.events)[-3000:]
    assert seen["rollback"] == "1.0.0"
    assert stats_data(job.events)["webdeploy"] == {"webxample": {"deployed": "1.0.0", "previous": "1.1.0"}}


def test_the_workflow_revert_job_rolls_back_and_ends_red(awx_jobs):
    seen, jobs = awx_jobs
    assert jobs["redeploy"].status == "successful", stdout(jobs["redeploy"].events)[-3000:]
    job = jobs["revert"]
    assert job.status == "failed", stdout(job.events)[-3000:]
    assert "This job fails on purpose" in " ".join(stdout(job.events).split())
    assert (seen["revert"], seen["current"]) == ("1.0.0", "1.0.0")
