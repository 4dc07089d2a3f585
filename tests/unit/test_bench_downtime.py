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
