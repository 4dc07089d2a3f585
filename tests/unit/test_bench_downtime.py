"""bench/downtime's rows per action, computed from hand-made raw data (no host, no load)."""

import importlib.util
from importlib.machinery import SourceFileLoader

from sandbox_support import PROJECT

# A script without a .py ending: loaded by path, its main() not run.
_loader = SourceFileLoader("bench_downtime", str(PROJECT / "bench" / "downtime"))
downtime = importlib.util.module_from_spec(importlib.util.spec_from_loader(_loader.name, _loader))
_loader.exec_module(downtime)


def record(t, status, error=""):
    """A bench/loadgen.py record: [t_sent, latency_s, status, version, error, lag_s]."""
    return [t, 0.01, status, "1.0.0" if status else "", error, 0.0]


def raw(actions):
    return {"started": 0.0, "ended": 10.0, "rate": 1.0,
            "switches": [[0.0, "/srv/apps/webxample/releases/1.0.0"], [4.5, "/srv/apps/webxample/releases/1.1.0"]],
            "requests": [record(1.0, 200), record(3.0, 200), record(5.5, 500), record(6.0, 0, "connect"),
                         record(9.9, 200)],
            "actions": actions}


def test_each_action_counts_the_requests_from_its_start_to_the_next_ones():
    report = downtime.analyse(raw([
        {"action": "deploy.yml 1.1.0", "row": "deploy", "start": 2.0, "end": 5.0, "expected": True, "outcome": "ok"},
        {"action": "deploy.yml 1.5.0 (broken)", "row": "broken release", "start": 6.0, "end": 7.0,
         "expected": True, "outcome": "failed as expected (rc 2): ..."},
    ]))
    rows = [{k: a[k] for k in ("row", "at_s", "seconds", "window_s", "expected", "outcome")}
            | {k: a["window"][k] for k in ("requests", "failed", "non_2xx", "connection_errors")}
            for a in report["actions"]]
    assert rows == [
        # The 500 came after the command returned, before the next action: it is the deploy's.
        {"row": "deploy", "at_s": 2.0, "seconds": 3.0, "window_s": 4.0, "expected": True, "outcome": "ok",
         "requests": 2, "failed": 1, "non_2xx": 1, "connection_errors": 0},
        # The last action's window runs to the end of the load.
        {"row": "broken release", "at_s": 6.0, "seconds": 1.0, "window_s": 4.0, "expected": True,
         "outcome": "failed as expected (rc 2): ...", "requests": 2, "failed": 1, "non_2xx": 0,
         "connection_errors": 1},
    ]
    assert report["overall"]["failed"] == 2


def test_raw_data_of_older_runs_still_reads():
    # Before the broken-release row an action had only an error string ("" when it went well).
    report = downtime.analyse(raw([
        {"action": "seed switch to 1.1.0", "start": 2.0, "end": 4.0, "error": ""},
        {"action": "seed switch to 1.0.0", "start": 6.0, "end": 8.0, "error": "failed (rc 1): ['refused']"},
    ]))
    assert [(a["row"], a["expected"], a["outcome"]) for a in report["actions"]] == [
        ("seed switch to 1.1.0", True, "ok"), ("seed switch to 1.0.0", False, "failed (rc 1): ['refused']")]


def late_raw(requests, actions):
    return {"started": 0.0, "ended": 40.0, "rate": 1.0,
            "switches": [[0.0, "/srv/apps/webxample/releases/1.0.0"]], "requests": requests, "actions": actions}


LATE_ACTIONS = [
    {"action": "deploy.yml 1.1.0", "row": "deploy", "start": 1.0, "end": 5.0, "expected": True, "outcome": "ok",
     "rollouts": [{"version": "1.1.0", "processes": 2, "boot_s": 1.4, "seconds": 2.2}]},
    {"action": "deploy.yml 1.7.0 (fails under load)", "row": "late failure", "start": 10.0, "end": 25.0,
     "expected": True, "outcome": "failed as expected (rc 2): ...", "release": "1.7.0",
     # The new release's rollout, then the old one's, back after the rollback.
     "rollouts": [{"version": "1.7.0", "processes": 2, "boot_s": 1.5, "seconds": 2.5},
                  {"version": "1.0.0", "processes": 2, "boot_s": 2.25, "seconds": 3.0}]},
    {"action": "rollback.yml", "row": "rollback", "start": 30.0, "end": 35.0, "expected": True, "outcome": "ok"},
]


def test_the_late_failure_row_reports_its_fail_fast_figure_and_the_old_releases_boot():
    requests = [record(2.0, 200), record(12.0, 200),
                # Failures are timed when the client saw them: sent + latency (0.01 s here).
                [15.0, 0.5, 500, "", "", 0.0], record(16.0, 500), [18.0, 0.01, 0, "", "connect", 0.0],
                record(21.49, 500), record(22.0, 200), record(31.0, 200)]
    report = downtime.analyse(late_raw(requests, LATE_ACTIONS))
    late = report["actions"][1]
    assert (late["row"], late["window"]["failed"], late["release"]) == ("late failure", 4, "1.7.0")
    assert late["failing"] == {"first_s": 5.5, "last_s": 11.5, "span_s": 6.0}
    assert report["late_failure"] == {
        "fail_fast_s": 6.0, "first_failed_s": 5.5, "last_failed_s": 11.5,
        "old_version": "1.0.0", "old_boot_s": 2.25, "target_s": 7.25, "met": True}
    assert [a["failing"] for a in report["actions"]] == [None, late["failing"], None]
    assert report["actions"][0]["rollouts"] == LATE_ACTIONS[0]["rollouts"]
    # Failures in the late-failure row only: nothing wrong with the run.
    assert downtime.problems({"ours": report}) == []


def test_a_fail_fast_figure_beyond_five_seconds_plus_the_boot_is_missed_and_needs_the_report():
    requests = [record(11.0, 500), record(19.0, 500)]
    assert downtime.analyse(late_raw(requests, LATE_ACTIONS))["late_failure"]["met"] is False
    # The baseline's row has no rollout report: its span, no target.
    seed = [dict(LATE_ACTIONS[1], rollouts=[], release=None)]
    assert downtime.analyse(late_raw(requests, seed))["late_failure"] == {
        "fail_fast_s": 8.0, "first_failed_s": 1.01, "last_failed_s": 9.01,
        "old_version": None, "old_boot_s": None, "target_s": None, "met": None}
    assert downtime.analyse(late_raw([record(11.0, 200)], LATE_ACTIONS))["late_failure"] is None


def test_ours_may_fail_requests_in_the_late_failure_row_only_and_each_other_failure_counts():
    requests = [record(0.5, 0, "connect"), record(3.0, 500), record(12.0, 500), record(13.0, 500),
                record(31.0, 0, "timeout")]
    report = {"ours": downtime.analyse(late_raw(requests, LATE_ACTIONS))}
    assert report["ours"]["overall"]["failed"] == 5
    # The one before the first action belongs to no row, and still counts.
    assert downtime.problems(report) == [
        "ours FAILED 3 request(s) outside the late failure row (deploy: 1, rollback: 1)"]
    report = {"ours": downtime.analyse(late_raw([record(0.5, 500)], LATE_ACTIONS))}
    assert downtime.problems(report) == [
        "ours FAILED 1 request(s) outside the late failure row (before the first action)"]


def test_an_action_that_did_not_do_what_it_should_fails_the_run():
    actions = [dict(LATE_ACTIONS[1], expected=False, outcome="deployed 1.7.0: the check after the switch let it"
                    " through")]
    report = {"ours": downtime.analyse(late_raw([record(12.0, 200)], actions))}
    assert downtime.problems(report) == [
        "ours: deploy.yml 1.7.0 (fails under load): deployed 1.7.0: the check after the switch let it through"]


# What ansible-playbook prints (the YAML result format folds long messages over lines).
ROLLED_BACK = """
TASK [release : Report the rollout] ********************************************
ok: [bench-web1] =>
    msg: 2 new process(es) of 1.7.0 ready in 1.52 s; 2 old one(s) stopped after that (2.41
        s in all)
TASK [release : Report the rollout] ********************************************
ok: [bench-web1] =>
    msg: 2 new process(es) of 1.0.0 ready in 2.03 s; 2 old one(s) stopped after that (3.1
        s in all)
TASK [release : Fail with what went wrong and what serves now] *****************
fatal: [bench-web1]: FAILED! =>
    changed: false
    msg: 'Deploy of webxample 1.7.0 failed on bench-web1: 1.7.0 failed after the switch
        (GET /healthz answered 500, expected 200 naming version 1.7.0: <!doctype html>
        <html lang="en"> <head> <title>Server Error (500)</title> </head> <body> <h1>Server
        Error (500)</h1><p></p> </body> </html>). Rolled back automatically: now serving
        1.0.0 (healthy).'
"""


def test_the_rollout_reports_are_read_from_the_playbooks_output():
    assert downtime.rollouts(ROLLED_BACK) == [
        {"version": "1.7.0", "processes": 2, "boot_s": 1.52, "seconds": 2.41},
        {"version": "1.0.0", "processes": 2, "boot_s": 2.03, "seconds": 3.1}]
    assert downtime.rollouts("PLAY RECAP") == []


def test_the_late_failures_outcome_quotes_the_roles_message():
    expected, outcome = downtime.late_outcome("webxample", "1.7.0", 2, ROLLED_BACK)
    assert expected
    assert outcome == (
        "failed as expected (rc 2): 1.7.0 failed after the switch (GET /healthz answered 500, expected 200 naming"
        " version 1.7.0: <!doctype html> <html lang=... Rolled back automatically: now serving"
        " 1.0.0 (healthy).")


def test_the_late_failure_let_through_stopped_before_the_switch_or_rolled_back_to_a_bad_release_is_unexpected():
    assert downtime.late_outcome("webxample", "1.7.0", 0, "PLAY RECAP") == (
        False, "deployed 1.7.0: the check after the switch let it through")
    canary = "msg: 'Deploy of webxample 1.7.0 failed on bench-web1: 1.7.0 failed its canary, before the switch:" \
             " GET / answered 500. Still serving: 1.0.0 (untouched).'"
    expected, outcome = downtime.late_outcome("webxample", "1.7.0", 2, canary)
    assert not expected and outcome.startswith("failed (rc 2) without a rollback: 1.7.0 failed its canary")
    unhealthy = ROLLED_BACK.replace("(healthy).", "(UNHEALTHY too: GET /healthz answered 503).")
    expected, outcome = downtime.late_outcome("webxample", "1.7.0", 2, unhealthy)
    assert not expected
    assert outcome.endswith("Rolled back automatically: now serving 1.0.0 (UNHEALTHY too: GET /healthz answered 503).")
