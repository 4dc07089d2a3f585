"""Injected faults, after test_stack.py: each case runs under the load loop (stack_support.load)
and checks that requests through nginx keep getting answers from a complete release, that
the apps' shared data survives, and that a re-run afterwards converges. The requests sent
and failed during each case are printed at the end of the run (conftest.py).

The cases run on the first web host (--limit) unless they need both; shop's releases on
that host live on a 320 MB tmpfs of their own (inventory: sandbox_tmpfs), to fill up.
"""

import pytest
import testinfra
from sandbox_support import recap
from stack_support import WEB, deploy, deploy_with, get, link, load, record, serving

W = WEB[0]
MARKER = ".webdeploy-release-complete"
SENTINEL = "kept across every fault"


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
    return all(c["failed"] == 0 and c["ok"] > 0 and set(c["versions"]) <= set(versions) for c in counts.values())


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
        midway = deploy_with(scenario_dir, "1.4.0", "webxample", "Create the release directory", stop_index, "--limit", W)
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
    # (case, version deployed, banner of the task at which the run is killed, delay)
    ("after the venv was created", "1.4.0", "Install the app and its dependencies", 0.0),
    ("after the switch, before the reload", "1.0.0", "temporary name, for previous", 0.0),
    ("during the reload", "1.4.0", "Reload the watcher gracefully", 1.5),
]


@pytest.fixture(name="killed", scope="module")
def fixture_killed(scenario_dir, baseline, index_lost):
    host = baseline[W]
    outcomes = []
    for case, version, task, delay in KILL_POINTS:
        before = serving(host, "shop.test")
        with load({W: host}, "shop.test") as counts:
            output, _, fired = deploy_with(scenario_dir, version, "shop", task, "kill", "--limit", W, delay=delay)
            after_kill = serving(host, "shop.test"), complete(host, "shop")
            # The lock is left behind: named stale (shown once, it is the same each time).
            refused = deploy(scenario_dir, version, "shop", "--limit", W) if not outcomes else None
            recovered = deploy(scenario_dir, version, "shop", "--limit", W, "-e", "release_break_lock=true")
        record(f"fault: ansible-playbook killed {case}", counts)
        outcomes.append({"case": case, "version": version, "before": before, "fired": fired, "output": output,
                         "after_kill": after_kill, "refused": refused, "recovered": recovered, "counts": counts,
                         "now": (serving(host, "shop.test"), complete(host, "shop"))})
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
    with load({W: host}, "shop.test") as counts:
        full = deploy(scenario_dir, "1.1.0", "shop", "--limit", W)
        during = serving(host, "shop.test"), complete(host, "shop")
        with host.sudo():
            after = host.check_output(kept)
            half = host.file(f"{releases}/1.1.0/{MARKER}").exists
            host.check_output(f"rm -f {releases}/.ballast")
        again = deploy(scenario_dir, "1.1.0", "shop", "--limit", W)
    record("fault: the disk holding the releases is full", counts)
    return full, during, before, after, half, again, counts


def test_a_full_disk_fails_the_deploy_clearly_and_keeps_the_old_releases(baseline, disk_full):
    full, during, before, after, half, again, counts = disk_full
    assert full.returncode != 0
    text = " ".join(full.stdout.split())
    assert "Deploy of shop 1.1.0 failed on stack-web12" in text and "No space left on device" in text, text[-3000:]
    assert during == ("1.4.0", "1.4.0") and not half
    assert before == after, "an old release changed"
    assert no_failure(counts, "1.4.0", "1.1.0"), counts
    assert again.returncode == 0, again.stdout[-3000:]
    assert serving(baseline[W], "shop.test") == "1.1.0" and shared_intact(baseline[W], "shop")
