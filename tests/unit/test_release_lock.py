"""The release role's deploy lock (roles/release/library/release_lock.py), on a temporary
directory: one holder at a time, the holder named to the loser, an existing lock broken
only when asked, the holder file never half-written."""

import json

from release_modules import load, run_module

lock_module = load("release_lock")
ME = {"user": "alice", "controller": "ctl", "pid": "100", "version": "1.2.0", "since": "x", "epoch": 1000}
OTHER = {"user": "bob", "controller": "ctl", "pid": "200", "version": "1.1.0", "since": "y", "epoch": 400}


def lock(tmp_path, **args):
    return run_module(lock_module, {"path": str(tmp_path / ".deploy.lock"), "holder": ME, **args})


def test_a_free_lock_is_taken_and_names_its_holder(tmp_path):
    got = lock(tmp_path)
    assert (got["changed"], got["acquired"], got["broken"]) == (False, True, None)
    assert json.loads((tmp_path / ".deploy.lock" / "holder.json").read_text()) == ME
    assert sorted(p.name for p in (tmp_path / ".deploy.lock").iterdir()) == ["holder.json"]


def test_a_held_lock_is_not_taken_and_the_holder_is_named(tmp_path):
    (tmp_path / ".deploy.lock").mkdir()
    (tmp_path / ".deploy.lock" / "holder.json").write_text(json.dumps(OTHER))
    result = lock_module.take(str(tmp_path / ".deploy.lock"), ME, now=1000)
    assert result == {"changed": False, "acquired": False, "holder": OTHER, "age": 600, "broken": None}
    assert json.loads((tmp_path / ".deploy.lock" / "holder.json").read_text()) == OTHER


def test_a_lock_that_names_nobody_is_held_all_the_same(tmp_path):
    (tmp_path / ".deploy.lock").mkdir()  # a run killed between mkdir and writing its name
    got = lock(tmp_path)
    assert (got["acquired"], got["holder"], got["age"]) == (False, {}, None)


def test_break_lock_removes_the_old_lock_and_takes_it(tmp_path):
    (tmp_path / ".deploy.lock").mkdir()
    (tmp_path / ".deploy.lock" / "holder.json").write_text(json.dumps(OTHER))
    got = lock(tmp_path, break_lock=True)
    assert (got["changed"], got["acquired"], got["broken"]) == (True, True, OTHER)
    assert json.loads((tmp_path / ".deploy.lock" / "holder.json").read_text()) == ME


def test_break_lock_without_a_lock_just_takes_it(tmp_path):
    got = lock(tmp_path, break_lock=True)
    assert (got["changed"], got["acquired"], got["broken"]) == (False, True, None)


def test_state_absent_drops_the_lock_and_is_no_change(tmp_path):
    lock(tmp_path)
    got = lock(tmp_path, state="absent")
    assert (got["changed"], (tmp_path / ".deploy.lock").exists()) == (False, False)
    assert lock(tmp_path, state="absent")["changed"] is False  # already gone


def test_of_two_runs_only_one_gets_the_lock(tmp_path):
    first, second = lock(tmp_path), lock(tmp_path, holder=OTHER)
    assert (first["acquired"], second["acquired"], second["holder"]) == (True, False, ME)


def test_a_lock_that_cannot_be_made_fails_with_the_reason(tmp_path):
    got = run_module(lock_module, {"path": str(tmp_path / "no" / "such" / ".deploy.lock"), "holder": ME})
    assert got["failed"]
    assert got["msg"] == f"Cannot take the deploy lock {tmp_path}/no/such/.deploy.lock: No such file or directory."


def test_once_taken_the_releases_are_read_again_under_the_lock(tmp_path):
    for name, complete in (("1.0.0", True), ("1.1.0", False)):
        (tmp_path / "releases" / name).mkdir(parents=True)
        if complete:
            (tmp_path / "releases" / name / ".done").write_text("")
    got = lock(tmp_path, releases=str(tmp_path / "releases"), marker=".done")
    assert (got["acquired"], got["complete"], got["unfinished"]) == (True, ["1.0.0"], ["1.1.0"])
    (tmp_path / ".deploy.lock" / "holder.json").write_text(json.dumps(OTHER))
    refused = lock(tmp_path, releases=str(tmp_path / "releases"), marker=".done")
    assert refused["acquired"] is False and "complete" not in refused  # not ours to read


def test_a_hold_at_locked_waits_with_the_lock_taken(tmp_path):
    import threading
    import time

    holds = tmp_path / "hold"
    done = []
    run = threading.Thread(target=lambda: done.append(lock(tmp_path, hold="locked", hold_dir=str(holds))))
    run.start()
    deadline = time.monotonic() + 10
    while not (holds / "locked").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert (tmp_path / ".deploy.lock" / "holder.json").exists() and not done
    (holds / "locked").unlink()
    run.join(10)
    assert done[0]["acquired"] is True


def test_check_mode_says_whether_the_lock_would_be_taken_and_touches_nothing(tmp_path):
    got = run_module(lock_module, {"path": str(tmp_path / ".deploy.lock"), "holder": ME}, check_mode=True)
    assert (got["changed"], got["acquired"]) == (False, True)
    assert not (tmp_path / ".deploy.lock").exists()
    (tmp_path / ".deploy.lock").mkdir()
    (tmp_path / ".deploy.lock" / "holder.json").write_text(json.dumps(OTHER))
    held = run_module(lock_module, {"path": str(tmp_path / ".deploy.lock"), "holder": ME}, check_mode=True)
    assert (held["acquired"], held["holder"]) == (False, OTHER)
    broken = run_module(lock_module, {"path": str(tmp_path / ".deploy.lock"), "holder": ME, "break_lock": True},
                        check_mode=True, diff=True)
    assert (broken["changed"], broken["acquired"], broken["broken"]) == (True, True, OTHER)
    assert json.loads(broken["diff"]["before"]) == OTHER and json.loads(broken["diff"]["after"]) == ME
    assert json.loads((tmp_path / ".deploy.lock" / "holder.json").read_text()) == OTHER  # untouched
    dropped = run_module(lock_module, {"path": str(tmp_path / ".deploy.lock"), "state": "absent"}, check_mode=True)
    assert dropped["changed"] is False and (tmp_path / ".deploy.lock").is_dir()
