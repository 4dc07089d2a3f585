"""Injected faults, after test_stack.py: each case runs under the load loop (stack_support.load)
and checks that requests through nginx keep getting answers from a complete release, that
the apps' shared data survives, and that a re-run afterwards converges. The requests sent
and failed during each case are printed at the end of the run (conftest.py).

The cases run on the first web host (--limit) unless they need both; shop's releases on
that host live on a 320 MB tmpfs of their own (inventory: sandbox_tmpfs), to fill up.
"""

import shlex
import shutil
import time

import pytest
import testinfra
import yaml
from sandbox_support import PROJECT, recap, run_playbook
from stack_support import (WEB, canary_left, deploy, deploy_with, get, held_nice, link, load, masters, priorities, record,
                           serving)

W = WEB[0]
MARKER = ".webdeploy-release-complete"
SENTINEL = "kept across every fault"
WEBXAMPLE_PROCESSES = 4  # its numprocesses (inventory/group_vars/web/apps.yml)


def shared_intact(host, app):
    """The app's data: the sentinel written by `baseline`, and its database answering."""
    with host.sudo():
        sentinel = host.file(f"/srv/apps/{app}/shared/sentinel").content_string.strip()
    status, page = get(host, "/", f"{app}.test")
    return sentinel == SENTINEL and status == 200 and "Version" in page


def complete(host, app):
    """The release `current` names, if it is complete (marker written), else None."""
    name = link(host, app, "current")
    return name if host.file(f"/srv/apps/{app}/releases/{name}/{MARKER}").exists else None


def no_failure(counts, *versions):
    """Every host of `counts` (at least one) answered, never failed, and only with `versions`."""
    return bool(counts) and all(c["failed"] == 0 and c["ok"] > 0 and set(c["versions"]) <= set(versions) for c in counts.values())


@pytest.fixture(name="index", scope="module")
def fixture_index(scenario_dir):
    return testinfra.get_host(f"ansible://stack-index?ansible_inventory={scenario_dir}/inventory")


@pytest.fixture(name="baseline", scope="module")
def fixture_baseline(scenario_dir, web):
    """Both apps on 1.0.0 everywhere, and a file of data each app must keep."""
    for app in ("webxample", "shop"):
        result = deploy(scenario_dir, "1.0.0", app)
        assert result.returncode == 0, result.stdout[-3000:]
    for host in web.values():
        for app in ("webxample", "shop"):
            with host.sudo():
                host.check_output(f"runuser -u {app} -- sh -c 'echo {SENTINEL} > /srv/apps/{app}/shared/sentinel'")
            for old in ("1.4.0",):
                host.check_output(f"rm -rf /srv/apps/{app}/releases/{old}")
    return web


# --- the package index goes away during a deploy ----------------------------------

@pytest.fixture(name="index_lost", scope="module")
def fixture_index_lost(scenario_dir, baseline, index):
    host = baseline[W]

    def stop_index(_proc):
        index.check_output("systemctl stop devpi-server")

    with load({W: host}) as counts:
        # The index is there when the deploy checks the version, gone when it installs.
        midway = deploy_with(scenario_dir, "1.4.0", "webxample", "venv", stop_index, {W: host}, "--limit", W)
        during = serving(host), link(host, "webxample", "current"), complete(host, "webxample")
        # Still gone: the next deploy stops at its check, before the lock or a directory.
        before = deploy(scenario_dir, "1.4.0", "webxample", "--limit", W)
        index.check_output("systemctl start devpi-server")
        index.check_output("for i in $(seq 60); do curl -sf http://127.0.0.1:3141/+api > /dev/null && exit 0; "
                           "sleep 1; done; exit 1")
        again = deploy(scenario_dir, "1.4.0", "webxample", "--limit", W)
    record("fault: the package index goes away during a deploy", counts)
    return midway, during, before, again, counts


def test_a_lost_index_fails_the_deploy_and_the_old_release_serves(baseline, index_lost):
    (output, rc, fired), during, before, again, counts = index_lost
    assert fired and rc != 0, output[-3000:]
    text = " ".join(output.split())
    assert "Deploy of webxample 1.4.0 failed on stack-web12: Install the app and its dependencies" in text, text[-3000:]
    assert "Still serving: 1.0.0 (untouched)" in text
    assert during == ("1.0.0", "1.0.0", "1.0.0")
    assert no_failure(counts, "1.0.0", "1.4.0"), counts


def test_an_unreachable_index_is_found_before_anything_changes(index_lost):
    before = index_lost[2]
    assert before.returncode != 0
    text = " ".join(before.stdout.split())
    assert 'webxample "1.4.0" cannot be installed from the package index (the index did not answer)' in text, text[-3000:]
    assert recap(before)[W]["changed"] == 0


def test_once_the_index_is_back_the_deploy_converges(baseline, index_lost):
    again = index_lost[3]
    host = baseline[W]
    assert again.returncode == 0, again.stdout[-3000:]
    assert serving(host) == "1.4.0" and complete(host, "webxample") == "1.4.0"
    assert shared_intact(host, "webxample")


# --- ansible-playbook killed (SIGKILL) in the middle of a deploy -------------------

KILL_POINTS = [
    # (case, version deployed, the release role's hold point at which the run is killed)
    ("after the venv was created", "1.4.0", "venv"),
    # One link renamed, the other not yet, whichever comes first: a rollback target must
    # never be lost (current moved on while previous still names the release before).
    ("between the two symlink switches", "1.0.0", "links"),
    ("after the switch, before the reload", "1.4.0", "switched"),
    # New processes started next to the old ones (twice as many in the watcher), neither
    # stopped yet: the next deploy replaces them all with processes of `current`.
    ("during the reload", "1.0.0", "rollout"),
    # The canary runs on (a transient systemd unit): the next run that takes the lock stops it.
    ("during the canary", "1.4.0", "canary"),
]


@pytest.fixture(name="killed", scope="module")
def fixture_killed(scenario_dir, baseline, index_lost):
    host = baseline[W]
    outcomes = []
    for case, version, point in KILL_POINTS:
        before, previous = serving(host, "shop.test"), link(host, "shop", "previous")
        with load({W: host}, "shop.test") as counts:
            held = []
            output, _, fired = deploy_with(scenario_dir, version, "shop", point, "kill", {W: host}, "--limit", W,
                                           observe=lambda h, p=point: held.append((priorities(h), held_nice(h, p))))
            after_kill = serving(host, "shop.test"), complete(host, "shop")
            previous_after_kill = link(host, "shop", "previous")
            canary_after_kill = canary_left(host, "shop")
            # The lock is left behind: named stale (shown once, it is the same each time).
            refused = deploy(scenario_dir, version, "shop", "--limit", W) if not outcomes else None
            recovered = deploy(scenario_dir, version, "shop", "--limit", W, "-e", "release_break_lock=true")
        record(f"fault: ansible-playbook killed {case}", counts)
        outcomes.append({"case": case, "version": version, "before": before, "fired": fired, "output": output,
                         "after_kill": after_kill, "previous": (previous, previous_after_kill), "refused": refused, "recovered": recovered, "counts": counts,
                         "now": (serving(host, "shop.test"), complete(host, "shop")),
                         "canary": (canary_after_kill, canary_left(host, "shop")),
                         "priorities": held[0][0] if held else None,
                         "module_nice": held[0][1] if held else None})
    return outcomes


@pytest.mark.parametrize("point", range(len(KILL_POINTS)), ids=[p[0] for p in KILL_POINTS])
def test_a_killed_deploy_leaves_a_complete_release_serving(baseline, killed, point):
    o = killed[point]
    assert o["fired"], o["output"][-3000:]
    # Whatever was serving, or the new release if the kill came after its processes started:
    # always a complete one, and `current` names a complete one.
    answered, current = o["after_kill"]
    assert answered in (o["before"], o["version"]), o["after_kill"]
    assert current in (o["before"], o["version"]), o["after_kill"]
    # Once current has moved on, previous names what served before: a rollback target
    # is never lost (previous is renamed before current).
    previous_before, previous_after = o["previous"]
    if current == o["version"]:
        assert previous_after == o["before"], (o["after_kill"], o["previous"])
    else:
        assert previous_after in (previous_before, o["before"]), (o["after_kill"], o["previous"])
    assert no_failure(o["counts"], o["before"], o["version"]), o["counts"]
    assert shared_intact(baseline[W], "shop")


@pytest.mark.parametrize("point", range(len(KILL_POINTS)), ids=[p[0] for p in KILL_POINTS])
def test_after_a_kill_the_stale_lock_is_named_and_the_next_deploy_succeeds(killed, point):
    o = killed[point]
    if o["refused"] is not None:
        text = " ".join(o["refused"].stdout.split())
        assert o["refused"].returncode != 0
        assert "STALE: its process" in text and "release_break_lock=true" in text, text[-3000:]
    assert o["recovered"].returncode == 0, o["recovered"].stdout[-3000:]
    assert o["now"] == (o["version"], o["version"])


def test_a_canary_left_by_a_killed_deploy_is_stopped_by_the_next_one(killed):
    o = next(o for o in killed if o["case"] == "during the canary")
    (state, processes), now = o["canary"]
    # Killed while asking its canary: the canary ran on, then the next deploy stopped it
    # (reported as a change) before proving its own, which it stopped too.
    assert state == "active" and "gunicorn" in processes, o["canary"]
    lines = o["recovered"].stdout.splitlines()
    banner = next(i for i, line in enumerate(lines) if line.startswith("TASK [release : Stop a canary left by a killed run]"))
    assert lines[banner + 1] == f"changed: [{W}]", lines[banner:banner + 3]
    assert now == ("inactive", ""), now
    for other in killed:
        if other is not o:
            assert other["canary"] == (("inactive", ""), ("inactive", "")), (other["case"], other["canary"])


def test_the_deploy_work_runs_lowered_and_serving_does_not(killed):
    # Held while its canary runs: the canary (the deploy's work) at release_work_nice 19,
    # every process Circus runs at 0. Held during the reload, old and new processes side
    # by side: all at 0 (Circus starts them; the deploy only asks it to).
    canary = next(o for o in killed if o["case"] == "during the canary")["priorities"]
    assert canary is not None
    assert sorted({nice for unit, nice in canary if unit == "webdeploy-canary-shop.service"}) == [19], canary
    assert sorted({nice for unit, nice in canary if unit == "circus.service"}) == [0], canary
    reload = next(o for o in killed if o["case"] == "during the reload")["priorities"]
    assert reload is not None
    assert sorted({nice for unit, nice in reload if unit == "circus.service"}) == [0], reload
    # Twice the usual processes: the new ones are up next to the old ones.
    assert sum(unit == "circus.service" for unit, _ in reload) > sum(unit == "circus.service" for unit, _ in canary), \
        (canary, reload)
    # The modules holding there (release_canary, release_rollout) ran lowered as well: the
    # deploy's wrapper interpreter (release_work_modules), nice 19.
    assert [(o["case"], o["module_nice"]) for o in killed if o["case"] in ("during the canary", "during the reload")] \
        == [("during the reload", 19), ("during the canary", 19)]


# --- the disk holding the releases is full -----------------------------------------

@pytest.fixture(name="disk_full", scope="module")
def fixture_disk_full(scenario_dir, baseline, killed):
    host = baseline[W]
    releases = "/srv/apps/shop/releases"
    kept = f"cd {releases} && find 1.0.0 1.4.0 -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"
    with host.sudo():
        host.check_output(f"rm -rf {releases}/1.1.0")
        before = host.check_output(kept)
        # Leave 1 MB: enough for the release directory, not for its virtualenv.
        host.check_output(f"fallocate -l $(( $(stat -f -c '%a * %S' {releases}) - 1048576 )) {releases}/.ballast")
    was = serving(host, "shop.test")
    with load({W: host}, "shop.test") as counts:
        full = deploy(scenario_dir, "1.1.0", "shop", "--limit", W)
        during = serving(host, "shop.test"), complete(host, "shop")
        with host.sudo():
            after = host.check_output(kept)
            half = host.file(f"{releases}/1.1.0/{MARKER}").exists
            host.check_output(f"rm -f {releases}/.ballast")
        again = deploy(scenario_dir, "1.1.0", "shop", "--limit", W)
    record("fault: the disk holding the releases is full", counts)
    return was, full, during, before, after, half, again, counts


def test_a_full_disk_fails_the_deploy_clearly_and_keeps_the_old_releases(baseline, disk_full):
    was, full, during, before, after, half, again, counts = disk_full
    assert full.returncode != 0
    text = " ".join(full.stdout.split())
    assert "Deploy of shop 1.1.0 failed on stack-web12" in text and "No space left on device" in text, text[-3000:]
    assert during == (was, was) and not half
    assert before == after, "an old release changed"
    assert no_failure(counts, was, "1.1.0"), counts
    assert again.returncode == 0, again.stdout[-3000:]
    assert serving(baseline[W], "shop.test") == "1.1.0" and shared_intact(baseline[W], "shop")


# --- the app's processes die -------------------------------------------------------

def until(check, seconds=240):
    """The first true value of check(), polled every half second for at most `seconds`
    (more than systemd's TimeoutStopSec=90 for circusd, see circusd_killed); None if none."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    return None


@pytest.fixture(name="app_killed", scope="module")
def fixture_app_killed(baseline, disk_full):
    host = baseline[W]
    killed, replaced = [], []
    with load({W: host}) as counts:
        for _ in range(5):
            pid = masters(host, "webxample")[0]
            with host.sudo():
                host.check_output(f"kill -9 {pid}")
            killed.append(pid)
            # Circus notices at its next check (5 s) and starts a new one; the next kill waits
            # for all the processes to be there again.
            now = until(lambda: (lambda m: m if len(m) == WEBXAMPLE_PROCESSES and not set(m) & set(killed) else None)(
                masters(host, "webxample")))
            replaced.append(now)
    record("fault: a gunicorn master of the app killed (SIGKILL) 5 times", counts)
    return killed, replaced, counts


def test_circus_replaces_a_killed_app_process(baseline, app_killed):
    killed, replaced, counts = app_killed
    # After each kill, all the processes again, none of them a killed one.
    assert len(killed) == len(replaced) == 5 and all(replaced), (killed, replaced)
    c = counts[W]
    assert c["ok"] > 0 and set(c["versions"]) == {"1.4.0"}, c
    # A master killed outright loses the requests its workers were serving; the loop
    # sends one at a time, so at most one per kill.
    assert c["failed"] <= len(killed), c
    assert shared_intact(baseline[W], "webxample")


@pytest.fixture(name="circusd_killed", scope="module")
def fixture_circusd_killed(baseline, app_killed):
    host = baseline[W]

    def main_pid():
        with host.sudo():
            return host.check_output("systemctl show -P MainPID circus")

    pid = main_pid()
    with load({W: host}) as counts:
        with host.sudo():
            host.check_output(f"kill -9 {pid}")
        # systemd restarts circusd (Restart=on-failure), which starts both apps again. In
        # these containers (cgroup v1) systemd is not told that the unit's processes are
        # gone, so it first waits out TimeoutStopSec (90 s).
        new = until(lambda: (lambda p: p if p not in ("0", pid) else None)(main_pid()))
        back = until(lambda: serving(host) == "1.4.0" and serving(host, "shop.test") == "1.1.0"
                     and len(masters(host, "webxample")) == WEBXAMPLE_PROCESSES)
    record("fault: circusd killed (SIGKILL), systemd restarts it", counts)
    return pid, new, back, counts


def test_systemd_restarts_circusd_and_the_app_comes_back(baseline, circusd_killed):
    pid, new, back, counts = circusd_killed
    host = baseline[W]
    assert new, f"circusd (pid {pid}) was not restarted"
    assert back, (serving(host), serving(host, "shop.test"), masters(host, "webxample"))
    c = counts[W]
    # The requests sent while no gunicorn runs fail (nginx answers 502): counted and
    # reported, not hidden; every answer before and after comes from the serving release.
    assert c["ok"] > 0 and set(c["versions"]) == {"1.4.0"}, c
    assert shared_intact(host, "webxample") and shared_intact(host, "shop")


# --- a host is unreachable in a rolling deploy -------------------------------------

@pytest.fixture(name="unreachable", scope="module")
def fixture_unreachable(scenario_dir, baseline, circusd_killed, tmp_path_factory):
    # The scenario's inventory with a web host that does not answer, second in the rollout.
    tmp_path = tmp_path_factory.mktemp("ghost")
    inventory = tmp_path / "inventory"
    shutil.copytree(scenario_dir / "inventory", inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    web = hosts["all"]["children"]["web"]["hosts"]
    hosts["all"]["children"]["web"]["hosts"] = {W: web[W], "stack-ghost": {"ansible_port": 1, "sandbox_image": "debian12"},
                                                WEB[1]: web[WEB[1]]}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    before = {name: serving(h) for name, h in baseline.items()}
    with load(baseline) as counts:
        result = run_playbook(tmp_path, PROJECT / "deploy.yml", extra_vars={"app_name": "webxample", "app_version": "1.1.0"})
        during = {name: serving(h) for name, h in baseline.items()}
        again = deploy(scenario_dir, "1.1.0")
    record("fault: a host unreachable in a rolling deploy of two hosts", counts)
    return before, result, during, again, counts


def test_an_unreachable_host_stops_the_rollout_and_is_named(baseline, unreachable):
    before, result, during, again, counts = unreachable
    assert before == {W: "1.4.0", WEB[1]: "1.0.0"}, before
    assert result.returncode != 0
    # The host before it was deployed completely, the one after it was not touched.
    assert during == {W: "1.1.0", WEB[1]: "1.0.0"}, (during, result.stdout[-3000:])
    text = " ".join(result.stdout.split())
    assert "UNREACHABLE" in text and "stack-ghost" in text, text[-3000:]
    assert recap(result, ["stack-ghost"])["stack-ghost"]["unreachable"] == 1, result.stdout[-3000:]
    assert no_failure({W: counts[W]}, "1.4.0", "1.1.0") and no_failure({WEB[1]: counts[WEB[1]]}, "1.0.0", "1.1.0"), counts
    assert again.returncode == 0, again.stdout[-3000:]
    assert {name: serving(h) for name, h in baseline.items()} == {W: "1.1.0", WEB[1]: "1.1.0"}


# --- a new process dies while it boots ---------------------------------------------

@pytest.fixture(name="crashed_boot", scope="module")
def fixture_crashed_boot(scenario_dir, baseline, unreachable):
    """shop (1 process) deployed to 1.6.0, which takes 8 s to boot; its new gunicorn master
    is killed (SIGKILL) 1 s after it started. The old process never stopped."""
    host = baseline[W]
    before, old = serving(host, "shop.test"), masters(host, "shop")
    # The killer runs on the host, started before the deploy: from the controller, each of
    # testinfra's commands takes seconds under load, enough for the 8 s boot to end first.
    killer = ("old=$1; for i in $(seq 3000); do new=$(circusctl list shop | tr , '\\n' | grep -vx $old); "
              "[ -n \"$new\" ] && break; sleep 0.1; done; sleep 1; kill -9 $new && echo $new > /run/stack-killed")
    with host.sudo():
        host.check_output(f"rm -f /run/stack-killed; systemd-run --unit=stack-kill-new-master --collect "
                          f"/bin/bash -c {shlex.quote(killer)} killer {old[0]}")
    with load({W: host}, "shop.test") as counts:
        result = deploy(scenario_dir, "1.6.0", "shop", "--limit", W)
    with host.sudo():
        host.run("systemctl stop stack-kill-new-master")
        victim = host.run("cat /run/stack-killed").stdout.split()
    record("fault: the new process killed while it boots (SIGKILL), 1.6.0", counts)
    return before, victim, result, counts


def test_a_process_that_dies_while_it_boots_rolls_back_at_once(baseline, crashed_boot):
    before, victim, result, counts = crashed_boot
    host = baseline[W]
    text = " ".join(result.stdout.split())
    assert len(victim) == 1, f"the killer found no new master: {victim}"
    assert (f"Deploy of shop 1.6.0 failed on {W}: 1.6.0 failed after the switch (its processes did not become ready: "
            f"process {victim[0]} exited while it booted.") in text, text[-3000:]
    assert f"Rolled back automatically: now serving {before} (healthy)." in text, text[-3000:]
    assert result.returncode != 0
    # The old process served throughout: no failed request, and 1.6.0 never answered.
    assert counts[W]["ok"] > 0 and counts[W]["failed"] == 0, counts
    assert set(counts[W]["versions"]) == {before}, counts
    assert serving(host, "shop.test") == before and link(host, "shop", "current") == before
    assert len(masters(host, "shop")) == 1
