"""The release role's switch (roles/release/library/release_switch.py) and its fault-injection
hold (module_utils/release_hold.py), on a directory laid out as an app's home: links set in
the order given, each by a rename, bad targets refused before any link moves, the deploy
log's line appended, check mode and diff, and a hold between the two links."""

import os
import threading
import time

import pytest
from release_modules import load, run_module

switch_module = load("release_switch")
hold_module = load("release_hold")
from ansible.module_utils import release_hold  # noqa: E402 (loaded by release_modules)


def home_with(tmp_path, releases=("1.0.0", "1.1.0", "1.2.0"), current=None, previous=None):
    home = tmp_path / "app"
    (home / "releases").mkdir(parents=True)
    for v in releases:
        (home / "releases" / v).mkdir()
    for name, v in (("current", current), ("previous", previous)):
        if v:
            (home / name).symlink_to(f"releases/{v}")
    return home


def links(home):
    return {n: os.readlink(home / n) for n in ("current", "previous") if (home / n).is_symlink()}


def switch(home, pairs, check_mode=False, diff=False, **extra):
    return run_module(switch_module, {"home": str(home), "links": [{"name": n, "release": r} for n, r in pairs], **extra},
                      check_mode=check_mode, diff=diff)


def test_a_deploy_sets_previous_then_current(tmp_path, monkeypatch):
    home = home_with(tmp_path, current="1.0.0", previous="1.0.0")
    renamed = []
    real = os.rename
    monkeypatch.setattr(switch_module.os, "rename", lambda a, b: (renamed.append(os.path.basename(b)), real(a, b)))
    got = switch(home, [("previous", "1.0.0"), ("current", "1.1.0")])
    assert got["changed"] is True and got["before"] == {"previous": "1.0.0", "current": "1.0.0"}
    assert got["after"] == {"previous": "1.0.0", "current": "1.1.0"}
    assert links(home) == {"current": "releases/1.1.0", "previous": "releases/1.0.0"}
    # previous already named 1.0.0: only current moved, by one rename of a temporary link.
    assert renamed == ["current"]
    assert sorted(p.name for p in home.iterdir()) == ["current", "previous", "releases"]


def test_the_links_move_in_the_order_given(tmp_path, monkeypatch):
    home = home_with(tmp_path, current="1.1.0", previous="1.0.0")
    renamed = []
    real = os.rename
    monkeypatch.setattr(switch_module.os, "rename", lambda a, b: (renamed.append(os.path.basename(b)), real(a, b)))
    switch(home, [("previous", "1.1.0"), ("current", "1.2.0")])
    assert renamed == ["previous", "current"]
    renamed.clear()
    switch(home, [("current", "1.1.0"), ("previous", "1.0.0")])  # the way back: current first
    assert renamed == ["current", "previous"]
    assert links(home) == {"current": "releases/1.1.0", "previous": "releases/1.0.0"}


def test_links_that_already_name_their_release_are_no_change(tmp_path):
    home = home_with(tmp_path, current="1.1.0", previous="1.0.0")
    got = switch(home, [("previous", "1.0.0"), ("current", "1.1.0")])
    assert (got["changed"], links(home)) == (False, {"current": "releases/1.1.0", "previous": "releases/1.0.0"})


def test_a_temporary_link_left_by_a_killed_run_is_replaced(tmp_path):
    home = home_with(tmp_path, current="1.0.0")
    (home / ".current.tmp").symlink_to("releases/1.2.0")
    switch(home, [("current", "1.1.0")])
    assert links(home) == {"current": "releases/1.1.0"}
    assert not (home / ".current.tmp").is_symlink()


@pytest.mark.parametrize("pairs, said", [
    ([("previous", "1.0.0"), ("current", "9.9.9")], "current cannot point at 9.9.9: {home}/releases/9.9.9 is not a directory"),
    ([("current", "../x")], "current cannot point at '../x': not a release name"),
    ([("current", "")], "current cannot point at '': not a release name"),
    ([("latest", "1.1.0")], "link name must be one of current, previous, got 'latest'"),
])
def test_a_bad_target_is_refused_before_any_link_moves(tmp_path, pairs, said):
    home = home_with(tmp_path, current="1.1.0", previous="1.0.0")
    got = switch(home, pairs)
    assert got["failed"] is True
    assert got["msg"] == "Refusing to switch: " + said.format(home=home) + "."
    assert links(home) == {"current": "releases/1.1.0", "previous": "releases/1.0.0"}


def test_check_mode_reports_the_change_with_a_diff_and_moves_nothing(tmp_path):
    home = home_with(tmp_path, current="1.1.0", previous="1.0.0")
    got = switch(home, [("previous", "1.1.0"), ("current", "1.2.0")], check_mode=True, diff=True,
                 log=str(home / "deploy.log"), record="a line")
    assert got["changed"] is True
    assert got["diff"]["before"] == "previous -> 1.0.0\ncurrent -> 1.1.0\n"
    assert got["diff"]["after"] == "previous -> 1.1.0\ncurrent -> 1.2.0\n"
    assert links(home) == {"current": "releases/1.1.0", "previous": "releases/1.0.0"}
    assert not (home / "deploy.log").exists()


def test_the_record_is_appended_to_the_deploy_log_after_the_links(tmp_path):
    home = home_with(tmp_path, current="1.0.0")
    (home / "deploy.log").write_text("first\tversion=1.0.0\tresult=ok\n")
    switch(home, [("current", "1.1.0")], log=str(home / "deploy.log"), record="second\tversion=1.1.0\tresult=ok")
    got = switch(home, [], log=str(home / "deploy.log"), record="third\tresult=failed: x")  # a failure: log only
    assert got["changed"] is True
    assert (home / "deploy.log").read_text().splitlines() == [
        "first\tversion=1.0.0\tresult=ok", "second\tversion=1.1.0\tresult=ok", "third\tresult=failed: x"]
    assert oct((home / "deploy.log").stat().st_mode & 0o777) == "0o644"


def test_a_record_without_a_log_is_refused(tmp_path):
    home = home_with(tmp_path)
    got = switch(home, [], record="x")
    assert got["msg"] == "Refusing to switch: record needs log, the deploy log's path."


def wait_for(path, timeout=10):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_a_hold_between_the_links_stops_with_previous_moved_and_current_not(tmp_path):
    home = home_with(tmp_path, current="1.0.0", previous="1.0.0")
    holds = tmp_path / "hold"
    run = threading.Thread(target=switch_module.switch, args=(str(home), [
        {"name": "previous", "release": "1.1.0"}, {"name": "current", "release": "1.2.0"}], False, "links", str(holds)))
    run.start()
    wait_for(holds / "links")
    # Held: what a run killed here leaves behind. The file names the process to kill.
    assert links(home) == {"current": "releases/1.0.0", "previous": "releases/1.1.0"}
    assert (holds / "links").read_text() == f"{os.getpid()}\n"
    (holds / "links").unlink()  # let it go on
    run.join(10)
    assert not run.is_alive()
    assert links(home) == {"current": "releases/1.2.0", "previous": "releases/1.1.0"}


def test_a_hold_for_another_point_or_none_never_waits(tmp_path):
    assert release_hold.hold("links", "", str(tmp_path)) is False
    assert release_hold.hold("links", "canary", str(tmp_path)) is False
    assert list(tmp_path.iterdir()) == []


def test_a_hold_nobody_ends_exits_like_a_crash(tmp_path):
    now, exits = [0.0], []

    def sleep(seconds):
        now[0] += seconds

    release_hold.hold("venv", "venv", str(tmp_path), timeout=5, sleep=sleep, clock=lambda: now[0], exit_=exits.append)
    assert exits == [75] and 5 <= now[0] < 5.2
    assert list(tmp_path.iterdir()) == []


def test_the_hold_task_knows_only_the_documented_points():
    assert release_hold.POINTS == ("locked", "venv", "canary", "links", "switched", "rollout")
    readme = (hold_module.__file__.rsplit("/library/", 1)[0]) + "/README.md"
    text = open(readme, encoding="utf-8").read()
    for point in release_hold.POINTS:
        assert f"| `{point}` |" in text, point
    import yaml
    specs = yaml.safe_load(open(readme.replace("README.md", "meta/argument_specs.yml"), encoding="utf-8"))
    for entry in ("main", "rollback"):
        choices = specs["argument_specs"][entry]["options"]["release_fault_hold"]["choices"]
        assert choices == [""] + list(release_hold.POINTS), entry
