"""The release role's state and cleanup modules (roles/release/library/release_state.py,
release_cleanup.py) on a directory tree laid out as an app's home, with no host."""

import json

import pytest
from release_modules import load, run_module

state_module = load("release_state")
cleanup_module = load("release_cleanup")
MARKER = ".webdeploy-release-complete"


def home_with(tmp_path, complete=(), unfinished=(), current=None, previous=None):
    home = tmp_path / "app"
    (home / "releases").mkdir(parents=True)
    for v in complete:
        (home / "releases" / v).mkdir()
        (home / "releases" / v / MARKER).write_text("")
    for v in unfinished:
        (home / "releases" / v / "venv").mkdir(parents=True)
    for name, v in (("current", current), ("previous", previous)):
        if v:
            (home / name).symlink_to(f"releases/{v}")
    return home


def read(home, **extra):
    return run_module(state_module, {"home": str(home), "marker": MARKER, **extra}, check_mode=True)


def test_state_names_links_complete_and_unfinished_releases(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0"], unfinished=["1.2.0"], current="1.1.0", previous="1.0.0")
    (home / "releases" / "stray-file").write_text("x")
    (home / "releases" / ".hidden").mkdir()
    got = read(home)
    assert (got["changed"], got["current"], got["previous"]) == (False, "1.1.0", "1.0.0")
    assert (got["complete"], got["unfinished"], got["missing"], got["lock"]) == (["1.0.0", "1.1.0"], ["1.2.0"], [], None)


def test_state_of_an_app_never_deployed(tmp_path):
    got = read(home_with(tmp_path))
    assert (got["current"], got["previous"], got["complete"], got["unfinished"]) == ("", "", [], [])


def test_state_names_the_required_directories_that_are_missing(tmp_path):
    home = home_with(tmp_path)
    (tmp_path / "a-file").write_text("")
    got = read(home, required=[str(home / "releases"), str(tmp_path / "ready"), str(tmp_path / "a-file")])
    assert got["missing"] == [str(tmp_path / "ready"), str(tmp_path / "a-file")]


def test_state_of_a_home_that_does_not_exist(tmp_path):
    got = read(tmp_path / "nothing", required=[str(tmp_path / "nothing" / "releases")])
    assert (got["complete"], got["missing"], got["lock"]) == ([], [str(tmp_path / "nothing" / "releases")], None)


@pytest.mark.parametrize(("holder", "expected"), [
    ({"user": "alice", "pid": "42", "version": "1.2.0"}, {"user": "alice", "pid": "42", "version": "1.2.0"}),
    (None, {}),  # a lock taken by a run killed before it wrote who it was
    ("not json", {}),
    ([1, 2], {}),
])
def test_state_reads_the_lock_holder(tmp_path, holder, expected):
    home = home_with(tmp_path)
    (home / ".deploy.lock").mkdir()
    if holder is not None:
        (home / ".deploy.lock" / "holder.json").write_text(holder if isinstance(holder, str) else json.dumps(holder))
    assert read(home)["lock"] == expected


def log(*entries):
    """Deploy log lines: (version, result) each, oldest first."""
    return "".join(f"2026-12-0{i + 1}T10:00:00Z\taction=deploy\tversion={v}\tprevious=-\tuser=u\tjob=-\tseconds=9"
                   f"\tresult={r}\n" for i, (v, r) in enumerate(entries))


def clean(tmp_path, home, keep, protect, text, check_mode=False, diff=False):
    (home / "deploy.log").write_text(text)
    return run_module(cleanup_module, {"releases": str(home / "releases"), "log": str(home / "deploy.log"),
                                       "keep": keep, "protect": protect}, check_mode=check_mode, diff=diff)


def on_disk(home):
    return sorted(p.name for p in (home / "releases").iterdir())


def test_cleanup_keeps_the_most_recently_used_not_the_newest(tmp_path):
    # 1.3.0 was rolled back to 1.1.0 (a rollback logs version=1.1.0): 1.2.0 served longest ago.
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"])
    text = log(("1.0.0", "ok"), ("1.2.0", "ok"), ("1.3.0", "ok"), ("1.1.0", "ok"), ("1.4.0", "ok"))
    got = clean(tmp_path, home, 3, ["1.4.0", "1.1.0"], text)
    assert (got["changed"], got["kept"], got["removed"]) == (True, ["1.4.0", "1.1.0", "1.3.0"], ["1.0.0", "1.2.0"])
    assert on_disk(home) == ["1.1.0", "1.3.0", "1.4.0"]


def test_cleanup_removes_unfinished_builds_and_ignores_failed_deploys(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0", "2.0.0"], unfinished=["1.5.0"])
    text = log(("1.0.0", "ok"), ("2.0.0", "failed: it answered 500"), ("1.1.0", "ok"))
    got = clean(tmp_path, home, 5, ["1.1.0", "1.0.0"], text)
    assert (got["kept"], got["removed"]) == (["1.1.0", "1.0.0"], ["1.5.0", "2.0.0"])


def test_cleanup_always_keeps_the_protected_releases(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0", "1.2.0"])
    got = clean(tmp_path, home, 1, ["1.2.0", "1.1.0"], log(("1.0.0", "ok")))
    assert (got["kept"], got["removed"]) == (["1.2.0", "1.1.0"], ["1.0.0"])


def test_cleanup_with_nothing_to_remove_changes_nothing(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0"])
    got = clean(tmp_path, home, 5, ["1.1.0", "1.0.0"], log(("1.0.0", "ok"), ("1.1.0", "ok")))
    assert (got["changed"], got["removed"]) == (False, [])


def test_cleanup_without_a_log_keeps_only_the_protected(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0", "1.2.0"])
    got = run_module(cleanup_module, {"releases": str(home / "releases"), "log": str(home / "none.log"),
                                      "keep": 5, "protect": ["1.2.0", ""]})
    assert (got["kept"], got["removed"]) == (["1.2.0"], ["1.0.0", "1.1.0"])


def test_cleanup_in_check_mode_reports_and_removes_nothing(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0", "1.2.0"])
    got = clean(tmp_path, home, 2, ["1.2.0", "1.1.0"], log(("1.0.0", "ok")), check_mode=True, diff=True)
    assert (got["changed"], got["removed"]) == (True, ["1.0.0"])
    assert got["diff"]["before"] == "1.0.0\n1.1.0\n1.2.0\n" and got["diff"]["after"] == "1.1.0\n1.2.0\n"
    assert on_disk(home) == ["1.0.0", "1.1.0", "1.2.0"]


def test_cleanup_leaves_stray_files_links_and_hidden_names_alone(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0"])
    (home / "releases" / "notes.txt").write_text("")
    (home / "releases" / ".partial").mkdir()
    (home / "releases" / "alias").symlink_to("1.0.0")
    got = clean(tmp_path, home, 1, ["1.1.0"], log(("1.1.0", "ok")))
    assert got["removed"] == ["1.0.0"]
    assert on_disk(home) == [".partial", "1.1.0", "alias", "notes.txt"]


def test_cleanup_refuses_to_keep_nothing(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0"])
    got = clean(tmp_path, home, 0, [], "")
    assert got["failed"] and got["msg"] == "keep must be 1 or more, got 0"
    assert on_disk(home) == ["1.0.0"]


def test_cleanup_records_the_run_first_and_counts_it(tmp_path):
    # The line of the deploy that just succeeded (1.2.0) is appended, then counted:
    # 1.0.0 served longest ago and goes.
    home = home_with(tmp_path, complete=["1.0.0", "1.1.0", "1.2.0"])
    (home / "deploy.log").write_text(log(("1.0.0", "ok"), ("1.1.0", "ok")))
    got = run_module(cleanup_module, {"releases": str(home / "releases"), "log": str(home / "deploy.log"), "keep": 2,
                                      "protect": ["1.2.0", "1.1.0"],
                                      "record": "2026-12-03T00:00:00Z\taction=deploy\tversion=1.2.0\tresult=ok"})
    assert (got["changed"], got["kept"], got["removed"]) == (True, ["1.2.0", "1.1.0"], ["1.0.0"])
    assert (home / "deploy.log").read_text().splitlines()[-1] == "2026-12-03T00:00:00Z\taction=deploy\tversion=1.2.0\tresult=ok"


def test_cleanup_in_check_mode_records_nothing(tmp_path):
    home = home_with(tmp_path, complete=["1.0.0"])
    got = run_module(cleanup_module, {"releases": str(home / "releases"), "log": str(home / "deploy.log"), "keep": 2,
                                      "protect": ["1.0.0"], "record": "x\tversion=1.0.0\tresult=ok"}, check_mode=True)
    assert got["removed"] == [] and not (home / "deploy.log").exists()


@pytest.mark.parametrize("active, running", [("active", True), ("deactivating", True), ("inactive", False),
                                             ("failed", False)])
def test_state_says_whether_a_canary_runs(tmp_path, monkeypatch, active, running):
    home = home_with(tmp_path)
    monkeypatch.setattr(state_module, "unit_state", lambda unit: active if unit == "webdeploy-canary-app.service" else "?")
    assert read(home, canary_unit="webdeploy-canary-app.service")["canary_running"] is running
    assert read(home)["canary_running"] is False  # no unit named: nothing asked
