"""bench/downtime's rows per action, computed from hand-made raw data, and its pure parts: the
options, the set-ups' cores, the CPU arithmetic and parsing, the error logs' grouping (no host,
no load)."""

import importlib.util
import os
import subprocess
from importlib.machinery import SourceFileLoader

import pytest
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


# --- set-ups, rows, CPU accounting and error logs -----------------------------------

def test_a_full_run_measures_both_set_ups_and_a_smoke_run_the_shared_one():
    args = downtime.parse_args([], cpus={0, 1})
    assert (args.setups, args.host_cpus, args.controller_cpu_set, args.rows) == (
        ["shared", "separated"], {0}, {1}, "all")
    assert downtime.parse_args(["--smoke"], cpus={0, 1}).setups == ["shared"]
    args = downtime.parse_args(["--setups", "separated", "--host-cpu", "1", "--container", "web"], cpus={0, 1, 2, 3})
    assert (args.setups, args.host_cpus, args.controller_cpu_set, args.container) == (
        ["separated"], {1}, {0, 2, 3}, "web")
    assert downtime.parse_args([], cpus={0, 1}).container == "bench-web1"


@pytest.mark.parametrize(("argv", "cpus", "said"), [
    (["--setups", "separated"], {0}, "the separated set-up needs 2 cores or more"),
    ([], {3}, "this machine gives this process 1 (3): use --setups shared"),
    (["--setups", "shared,both"], {0, 1}, "--setups shared,both: a comma list of shared, separated, each once"),
    (["--setups", "shared,shared"], {0, 1}, "each once"),
    (["--host-cpu", "0-1"], {0, 1}, "--host-cpu 0-1 leaves no core to the controller"),
    (["--host-cpu", "2"], {0, 1}, "--host-cpu 2: not among the cores this process may use (0-1)"),
    (["--controller-cpus", "0-1"], {0, 1}, "share core(s) 0"),
    (["--host-cpu", "x"], {0, 1}, "'x' is not a list of cores"),
])
def test_set_ups_that_cannot_run_here_are_refused_before_anything(argv, cpus, said, capsys):
    with pytest.raises(SystemExit) as e:
        downtime.parse_args(argv, cpus=cpus)
    assert e.value.code == 2
    assert said in capsys.readouterr().err


def test_a_rate_for_all_set_ups_or_one_per_set_up():
    args = downtime.parse_args([], cpus={0, 1})
    assert (args.rates, args.rate) == ({"shared": 200.0, "separated": 200.0}, 200.0)
    args = downtime.parse_args(["--rate", "150"], cpus={0, 1})
    assert args.rates == {"shared": 150.0, "separated": 150.0}
    # A set-up not named keeps the default; the report's single rate is the first set-up's.
    args = downtime.parse_args(["--rate", "separated=90"], cpus={0, 1})
    assert (args.rates, args.rate) == ({"shared": 200.0, "separated": 90.0}, 200.0)
    args = downtime.parse_args(["--rate", "shared=300,separated=130", "--setups", "separated,shared"], cpus={0, 1})
    assert (args.rates, args.rate) == ({"shared": 300.0, "separated": 130.0}, 130.0)
    assert downtime.parse_args(["--smoke"], cpus={0, 1}).rates == {"shared": 20.0}


@pytest.mark.parametrize(("rate", "said"), [
    ("fast", "--rate fast: 'fast' is not a number of requests per second"),
    ("0", "--rate 0: 0 requests/s: give more than 0 and at most 10000"),
    ("shared=200,both=100", "--rate shared=200,both=100: 'both' is not a set-up (one of shared, separated)"),
    ("separated=x", "--rate separated=x: 'x' is not a number of requests per second"),
])
def test_a_rate_that_is_not_one_is_refused_before_anything(rate, said, capsys):
    with pytest.raises(SystemExit) as e:
        downtime.parse_args(["--rate", rate], cpus={0, 1})
    assert e.value.code == 2
    assert said in capsys.readouterr().err


def test_a_rate_for_a_set_up_that_does_not_run_is_refused(capsys):
    with pytest.raises(SystemExit):
        downtime.parse_args(["--rate", "separated=90", "--setups", "shared"], cpus={0, 1})
    assert "--rate separated=90: separated is not among --setups shared" in capsys.readouterr().err


def test_calibrate_takes_a_list_of_rates_and_measures_steady_load_only():
    args = downtime.parse_args(["--calibrate", "100,150.5"], cpus={0, 1})
    assert (args.calibrate, args.plot, args.out.name, args.min_seconds) == (
        [100.0, 150.5], None, "downtime-calibrate.json", 0.0)
    assert downtime.parse_args([], cpus={0, 1}).calibrate is None
    assert downtime.parse_args(["--calibrate", "100"], cpus={0, 1}).lead == 60.0
    assert downtime.parse_args(["--calibrate", "100", "--calibrate-seconds", "30"], cpus={0, 1}).lead == 30.0


def test_the_controller_runs_at_the_niceness_asked_and_the_report_says_so():
    assert downtime.parse_args([], cpus={0, 1}).controller_nice == 0
    assert downtime.parse_args(["--controller-nice", "19"], cpus={0, 1}).controller_nice == 19
    assert downtime.niced(0) == []
    # The command runs at nice 19, and so does its session's autogroup where the kernel
    # has one (a nice level alone counts only within the autogroup).
    out = subprocess.run([*downtime.niced(19), "sh", "-c", "nice; cat /proc/self/autogroup 2>/dev/null || true"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "19", out
    if os.path.exists("/proc/self/autogroup"):
        assert out[1].endswith(" nice 19") and out[1] != open("/proc/self/autogroup").read().strip(), out


def test_a_controller_niceness_outside_0_to_19_is_refused(capsys):
    with pytest.raises(SystemExit):
        downtime.parse_args(["--controller-nice", "20"], cpus={0, 1})
    assert "--controller-nice 20: a niceness from 0 to 19" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["--calibrate", "100,lots"], "--calibrate 100,lots: 'lots' is not a number of requests per second"),
    (["--calibrate", "100", "--smoke"], "--calibrate measures steady load only: not with --smoke or --from-raw"),
    (["--calibrate", "100", "--calibrate-seconds", "5"], "--calibrate-seconds 5: at least 10"),
])
def test_calibrate_refuses_what_it_cannot_measure(argv, said, capsys):
    with pytest.raises(SystemExit):
        downtime.parse_args(argv, cpus={0, 1})
    assert said in capsys.readouterr().err


def test_calibration_names_the_rate_closest_to_85_percent_busy(capsys):
    row = {"rate_sent": 99.9, "failed": 0, "p50_ms": 10.0, "p99_ms": 40.0, "machine_busy_pct": 60.0,
           "client_lag_p99_ms": 1.0}
    downtime.show_calibration("separated", [{**row, "rate": 100.0, "host_busy_pct": 61.0},
                                            {**row, "rate": 150.0, "host_busy_pct": 88.0},
                                            {**row, "rate": 200.0, "host_busy_pct": 99.0}])
    assert "closest to 85 % busy: 150 req/s (88 %)" in capsys.readouterr().out


def test_the_shared_set_up_alone_and_a_report_from_raw_data_run_on_one_core():
    assert downtime.parse_args(["--setups", "shared"], cpus={0}).setups == ["shared"]
    assert downtime.parse_args(["--from-raw", "x.json"], cpus={0}).setups == ["shared", "separated"]


def test_cpu_lists():
    assert downtime.parse_cpus("0-2,5") == {0, 1, 2, 5}
    assert downtime.parse_cpus("1") == {1}
    assert downtime.format_cpus({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert downtime.format_cpus({1}) == "1"
    with pytest.raises(ValueError):
        downtime.parse_cpus("2-1")


def test_rows_switches_keeps_ours_deploys_and_rollback_and_the_seeds_three_switches():
    plan = downtime.plan("switches", "1.0.0", "1.1.0", "1.5.0", "1.7.0")
    assert plan == {
        "ours": [("deploy", "deploy.yml 1.1.0", ("deploy", "1.1.0")), ("deploy", "deploy.yml 1.0.0", ("deploy", "1.0.0")),
                 ("rollback", "rollback.yml", ("rollback",))],
        "baseline": [("deploy", "seed switch to 1.1.0", ("seed", "1.1.0")),
                     ("deploy", "seed switch to 1.0.0", ("seed", "1.0.0")),
                     ("rollback", "seed switch back to 1.1.0 (rollback)", ("seed", "1.1.0"))]}
    full = downtime.plan("all", "1.0.0", "1.1.0", "1.5.0", "1.7.0")
    assert [row for row, _, _ in full["ours"]] == [row for row, _, _ in full["baseline"]] == [
        "deploy", "deploy", "broken release", "late failure", "rollback"]
    # The seed serves a bad release for as long as ours' row of the same name took.
    assert full["baseline"][3] == ("late failure", "seed switch to 1.7.0 (fails under load), back to 1.0.0",
                                   ("seed and back", "1.7.0", "late failure"))
    assert downtime.parse_args(["--rows", "switches"], cpus={0, 1}).rows == "switches"


CONTAINER = "/libpod_parent/libpod-a864e545be02"
# /proc/PID/cgroup of a process of the app, seen from the host: cgroup v1 (hybrid) ...
V1_CIRCUS = f"""12:cpu,cpuacct:{CONTAINER}
9:name=systemd:{CONTAINER}/system.slice/circus.service
4:memory:{CONTAINER}
0::{CONTAINER}
"""
# ... and cgroup v2 only: systemd in the container moves itself into init.scope.
V2_INIT = "0::/machine.slice/libpod-a864e545be02.scope/container/init.scope\n"
V2_NGINX = "0::/machine.slice/libpod-a864e545be02.scope/container/system.slice/nginx.service\n"


def test_cgroup_lines_give_the_container_and_the_systemd_unit():
    v1 = downtime.parse_cgroups(V1_CIRCUS)
    assert v1["cpuacct"] == v1["cpu"] == CONTAINER
    assert downtime.unit_of(v1) == "circus.service"
    assert downtime.in_cgroup(v1["cpuacct"], CONTAINER)
    assert not downtime.in_cgroup(v1["cpuacct"], CONTAINER + "0")
    assert not downtime.in_cgroup(None, CONTAINER)
    assert downtime.unit_of(downtime.parse_cgroups(V2_NGINX)) == "nginx.service"
    assert downtime.unit_of(downtime.parse_cgroups(V2_INIT)) is None
    assert downtime.in_cgroup(downtime.parse_cgroups(V2_NGINX)[""], "/machine.slice/libpod-a864e545be02.scope/container")


def test_the_containers_cpu_total_is_cpuacct_usage_with_v1_and_cpu_stat_with_v2(tmp_path):
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / CONTAINER.lstrip("/")).mkdir(parents=True)
    (v1 / "cpu,cpuacct" / CONTAINER.lstrip("/") / "cpuacct.usage").write_text("2500000000\n")
    hierarchy, path, f = downtime.cgroup_usage_file(downtime.parse_cgroups(V1_CIRCUS), root=v1)
    assert (hierarchy, path) == ("cpuacct", CONTAINER)
    assert downtime.cgroup_usage_s(f.name, f.read_text()) == 2.5
    v2 = tmp_path / "v2"
    container = v2 / "machine.slice/libpod-a864e545be02.scope/container"
    container.mkdir(parents=True)
    (container / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    hierarchy, path, f = downtime.cgroup_usage_file(downtime.parse_cgroups(V2_INIT), root=v2)
    assert (hierarchy, path, f) == ("", "/machine.slice/libpod-a864e545be02.scope/container", container / "cpu.stat")
    assert downtime.cgroup_usage_s(f.name, f.read_text()) == 1.5
    with pytest.raises(ValueError):
        downtime.cgroup_usage_file({"memory": CONTAINER}, root=tmp_path)


def test_a_processs_cpu_is_read_after_its_command_name_which_may_hold_spaces_and_parentheses():
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
    stat = "17299 (gun (corn) x) S 15882 17299 17299 0 -1 4194560 5640 0 0 0 8 1 30 4 20 0 1 0 6750173 32989184"
    assert downtime.stat_ticks(stat) == 8 + 1 + 30 + 4
    assert downtime.stat_ticks(stat, children=False) == 9


def snap(t, container, app, nginx, controller, loadgen=None):
    return {"t": t, "container": container, "app": app, "nginx": nginx, "controller": controller, "loadgen": loadgen}


def test_the_host_deploys_share_is_the_containers_cpu_less_the_app_nginx_and_a_load_generator_inside():
    before, after = snap(100.0, 50.0, 10.0, 2.0, 3.0, 1.0), snap(110.0, 58.5, 13.0, 2.5, 7.25, 2.5)
    shared = downtime.cpu_figures(before, after, loadgen_on_host=True)
    assert shared == {"seconds": 10.0, "host_total": 8.5, "host_deploy": 3.5, "app": 3.0, "nginx": 0.5,
                      "loadgen": 1.5, "controller": 4.25}
    # The load generator on the controller: none of the container's CPU is its.
    assert downtime.cpu_figures(before, after, loadgen_on_host=False)["host_deploy"] == 5.0
    # Not found (no container to read, or the load generator gone): nothing subtracted.
    assert downtime.cpu_figures(snap(0, 1, 0, 0, 0), snap(1, 2, 0, 0, 0), True)["loadgen"] is None
    assert downtime.cpu_figures(None, after, True) is None
    assert downtime.busy_pct(shared, 2) == 42.5
    assert downtime.busy_pct(shared, 1) == 85.0
    assert downtime.busy_pct(None, 1) is None


def test_each_action_has_its_cpu_over_its_command_and_until_the_next_one():
    data = raw([
        {"action": "deploy.yml 1.1.0", "row": "deploy", "start": 2.0, "end": 5.0, "expected": True, "outcome": "ok",
         "cpu_before": snap(2.0, 10.0, 1.0, 0.5, 0.0, 0.1), "cpu_after": snap(5.0, 14.0, 2.0, 0.7, 3.0, 0.4)},
        {"action": "rollback.yml", "row": "rollback", "start": 6.0, "end": 7.0, "expected": True, "outcome": "ok",
         "cpu_before": snap(6.0, 15.0, 2.5, 0.8, 3.0, 0.5), "cpu_after": snap(7.0, 16.0, 3.0, 0.9, 4.0, 0.6)},
    ])
    data["cpu"] = {"start": snap(0.0, 8.0, 0.5, 0.3, 0.0, 0.0), "steady_end": snap(1.0, 9.0, 0.9, 0.4, 0.0, 0.05),
                   "end": snap(10.0, 18.0, 4.0, 1.0, 4.0, 0.9), "loadgen_on_host": False, "host_cores": 1}
    report = downtime.analyse(data)
    first, last = report["actions"]
    assert first["cpu"] == {"seconds": 3.0, "host_total": 4.0, "host_deploy": 2.8, "app": 1.0, "nginx": 0.2,
                            "loadgen": 0.3, "controller": 3.0}
    assert first["cpu_window"]["seconds"] == 4.0 and first["cpu_window"]["host_total"] == 5.0
    assert last["cpu_window"]["seconds"] == 4.0 and last["cpu_window"]["app"] == 1.5
    assert report["steady_cpu"]["host_total"] == 1.0 and report["steady_host_busy_pct"] == 100.0
    assert downtime.cpu_line(first["cpu"], False) == (
        "cpu s: host deploy 2.8, app 1.0, nginx 0.2; controller 3.0, load generator 0.3")
    assert downtime.cpu_line(first["cpu"], True) == (
        "cpu s: host deploy 2.8, app 1.0, nginx 0.2, load generator 0.3; controller 3.0")
    # Older raw data has no CPU figures: none in the report, and it still reads.
    assert downtime.analyse(raw([]))["steady_cpu"] is None


NGINX_LOG = """\
2026/12/04 04:30:01 [error] 16333#16333: *1201 connect() to unix:/run/circus/sockets/webxample.sock failed (11: \
Resource temporarily unavailable) while connecting to upstream, client: 10.89.0.1, server: webxample.bench, \
request: "GET / HTTP/1.1", upstream: "http://unix:/run/circus/sockets/webxample.sock:/", host: "webxample.bench"
2026/12/04 04:30:01 [error] 16334#16334: *1215 connect() to unix:/run/circus/sockets/webxample.sock failed (11: \
Resource temporarily unavailable) while connecting to upstream, client: 10.89.0.1, server: webxample.bench, \
request: "GET / HTTP/1.1", upstream: "http://unix:/run/circus/sockets/webxample.sock:/", host: "webxample.bench"
2026/12/04 04:30:02 [warn] 16333#16333: *1390 an upstream response is buffered to a temporary file \
/var/lib/nginx/proxy/1/00/0000000001 while reading upstream, client: 127.0.0.1:51234, server: webxample.bench
2026/12/04 04:30:03 [notice] 890#890: signal process started
"""
GUNICORN_LOG = """\
[2026-12-04 04:24:08 +0000] [1246] [INFO] Booting worker with pid: 1246
[2026-12-04 04:24:09 +0000] [1247] [INFO] Booting worker with pid: 1247
[2026-12-04 04:24:30 +0000] [1243] [CRITICAL] WORKER TIMEOUT (pid:1247)
[2026-12-04 04:24:31 +0000] [1250] [INFO] Booting worker with pid: 1250
"""


def test_log_lines_lose_their_times_pids_connections_and_ports_so_that_a_message_groups():
    lines = NGINX_LOG.splitlines()
    assert downtime.normalise(lines[0]) == downtime.normalise(lines[1]) == (
        "[error] connect() to unix:/run/circus/sockets/webxample.sock failed (11: Resource temporarily unavailable)"
        ' while connecting to upstream, client: 10.89.0.1, server: webxample.bench, request: "GET / HTTP/1.1",'
        ' upstream: "http://unix:/run/circus/sockets/webxample.sock:/", host: "webxample.bench"')
    assert downtime.normalise(lines[2]).endswith("client: 127.0.0.1, server: webxample.bench")
    assert downtime.normalise(GUNICORN_LOG.splitlines()[0]) == "[N] [INFO] Booting worker with pid: N"
    assert downtime.normalise(GUNICORN_LOG.splitlines()[2]) == "[N] [CRITICAL] WORKER TIMEOUT (pid:N)"
    grouped = downtime.group_messages(NGINX_LOG + "\n", top=2)
    assert (grouped["lines"], grouped["distinct"]) == (4, 3)
    assert [n for _, n in grouped["top"]] == [2, 1]
    assert grouped["top"][0][0].startswith("[error] connect() to unix:")
    assert downtime.group_messages(GUNICORN_LOG)["top"] == [
        ["[N] [INFO] Booting worker with pid: N", 3], ["[N] [CRITICAL] WORKER TIMEOUT (pid:N)", 1]]
    assert downtime.group_messages("") == {"lines": 0, "distinct": 0, "top": []}


def test_the_report_prints_each_set_up_and_both_side_by_side(capsys):
    actions = [dict(a) for a in LATE_ACTIONS]
    for i, a in enumerate(actions):
        a["cpu_before"], a["cpu_after"] = snap(a["start"], i, 0, 0, 0, 0), snap(a["end"], i + 1.5, 0.5, 0.25, 2, 0.1)
    data = late_raw([record(2.0, 200), record(12.0, 500), record(31.0, 200)], actions)
    data["cpu"] = {"start": snap(0, 0, 0, 0, 0, 0), "steady_end": snap(1, 0.5, 0.2, 0.1, 0, 0.05),
                   "end": snap(40, 9, 3, 1, 6, 1), "loadgen_on_host": True, "host_cores": 2}
    data["logs"] = {"/var/log/nginx/error.log": None,
                    "/var/log/webxample/stderr.log": downtime.group_messages(GUNICORN_LOG) | {"bytes": 9, "cut": False}}
    report = {s: {label: downtime.analyse(data) for label in ("ours", "baseline")} for s in ("shared", "separated")}
    for s in report:
        downtime.show("ours", report[s]["ours"], s)
    downtime.side_by_side(report, ["shared", "separated"])
    out = capsys.readouterr().out
    assert "web host 25 % busy before the first switch (of 2 core(s))" in out
    assert "cpu s: host deploy 0.7, app 0.5, nginx 0.2, load generator 0.1; controller 2.0" in out
    assert "error logs during the load: error.log missing, stderr.log 4" in out
    assert "stderr.log: 3 x [N] [INFO] Booting worker with pid: N" in out
    assert "ours: deploy.yml 1.7.0 (fails under" in out
    assert "| shared" in out and "| separated" in out


def test_the_work_before_a_switch_is_counted_apart_from_the_switch():
    # The switch at 4.5 s: the deploy's own work is what was sent before 2.5 s (WINDOW
    # before it); an action with no switch in its window is all "before".
    report = downtime.analyse(raw([
        {"action": "deploy.yml 1.1.0", "row": "deploy", "start": 0.5, "end": 5.0, "expected": True, "outcome": "ok"},
        {"action": "deploy.yml 1.5.0 (broken)", "row": "broken release", "start": 5.8, "end": 7.0,
         "expected": True, "outcome": "failed as expected (rc 2): ..."},
    ]))
    before = [(a["before_switch"]["requests"], a["before_switch"]["failed"], a["before_switch"]["seconds"])
              for a in report["actions"]]
    assert before == [(1, 0, 2.0), (2, 1, 4.2)]


def test_the_load_generator_raises_its_open_files_limit(monkeypatch):
    _lg = SourceFileLoader("bench_loadgen", str(PROJECT / "bench" / "loadgen.py"))
    loadgen = importlib.util.module_from_spec(importlib.util.spec_from_loader(_lg.name, _lg))
    _lg.exec_module(loadgen)
    limits = {"now": (1024, 20000)}
    monkeypatch.setattr(loadgen.resource, "getrlimit", lambda _: limits["now"])
    monkeypatch.setattr(loadgen.resource, "setrlimit", lambda _, v: limits.update(now=v))
    assert loadgen.raise_open_files(2064) == 2064 and limits["now"] == (2064, 20000)
    limits["now"] = (1024, 1500)
    assert loadgen.raise_open_files(2064) == 1500  # up to the hard limit, no further
    limits["now"] = (4096, 20000)
    assert loadgen.raise_open_files(2064) == 4096  # never lowered
