"""bench/plot.py's figures per second of load (the plot draws them; no matplotlib here)."""

import sys

from sandbox_support import PROJECT

sys.path.insert(0, str(PROJECT / "bench"))
import plot  # noqa: E402
from benchlib import raw_setups  # noqa: E402


def record(t, latency, status, error=""):
    """A bench/loadgen.py record: [t_sent, latency_s, status, version, error, lag_s]."""
    return [t, latency, status, "1.0.0" if status else "", error, 0.0]


def test_requests_are_counted_in_the_second_they_were_sent_in():
    records = [
        record(100.1, 0.010, 200), record(100.5, 0.030, 200), record(100.9, 0.020, 500),
        # second 1: nothing sent (the client stalled)
        record(102.2, 0.001, 0, "connect"), record(102.7, 10.0, 0, "timeout"),
        record(103.0, 0.1234, 200), record(103.5, 0.005, 200),
        # second 4: the load ran on into it, nothing sent
    ]
    assert plot.per_second(records, 100.0, 104.2) == [
        # A 500 is an answer: its latency counts, and it failed.
        {"second": 0, "requests": 3, "failed": 1, "p50_ms": 20.0, "p99_ms": 30.0},
        {"second": 1, "requests": 0, "failed": 0, "p50_ms": None, "p99_ms": None},
        # Only failures with no answer: no latency at all, not a latency of 0.
        {"second": 2, "requests": 2, "failed": 2, "p50_ms": None, "p99_ms": None},
        # Nearest rank: of two, the median is the first.
        {"second": 3, "requests": 2, "failed": 0, "p50_ms": 5.0, "p99_ms": 123.4},
        {"second": 4, "requests": 0, "failed": 0, "p50_ms": None, "p99_ms": None},
    ]


def test_p50_and_p99_are_nearest_rank_over_the_answered_requests():
    # 100 answers of 1..100 ms, sent in random order within one second, and one that got none.
    records = [record(5.0 + (i * 37 % 100) / 100, (i * 37 % 100 + 1) / 1000, 200) for i in range(100)]
    records.append(record(5.5, 0.0, 0, "closed"))
    assert plot.per_second(records, 5.0, 6.0) == [
        {"second": 0, "requests": 101, "failed": 1, "p50_ms": 50.0, "p99_ms": 99.0}]


def test_a_record_sent_at_the_very_end_counts_in_the_last_second():
    rows = plot.per_second([record(1.0, 0.01, 200), record(3.0, 0.02, 204)], 1.0, 3.0)
    assert [(r["second"], r["requests"]) for r in rows] == [(0, 1), (1, 1)]


def test_no_load_gives_empty_seconds():
    assert plot.per_second([], 10.0, 12.5) == [
        {"second": s, "requests": 0, "failed": 0, "p50_ms": None, "p99_ms": None} for s in range(3)]


def test_raw_data_is_read_per_set_up_and_older_raw_data_as_the_shared_one():
    ours, baseline = {"requests": [1]}, {"requests": [2]}
    # Before the set-ups: ours and the baseline at the top, the load in the host.
    assert raw_setups({"ours": ours, "baseline": baseline}) == {"shared": {"ours": ours, "baseline": baseline}}
    assert raw_setups({"setups": ["separated", "shared"], "separated": {"ours": ours}, "shared": {"ours": baseline}}) \
        == {"separated": {"ours": ours}, "shared": {"ours": baseline}}
    # A run stopped during its first set-up has only that one.
    assert raw_setups({"setups": ["shared", "separated"], "shared": {"ours": ours}}) == {"shared": {"ours": ours}}
