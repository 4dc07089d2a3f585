"""The benchmarks refuse to touch hosts they were not made for, before doing anything."""

import importlib.util
import os
import subprocess
import sys
from importlib.machinery import SourceFileLoader

import pytest
from sandbox_support import ANSIBLE_PLAYBOOK, PROJECT


# A production inventory's host: the benchmarks delete releases, restart apps and skip
# SSH host key checks, so they must stop before reaching it (it does not even resolve).
@pytest.mark.parametrize("command", [
    ["bench/deploy_speed", "--smoke", "-i", "inventories/prod", "--hosts", "web1.example.com"],
    ["bench/downtime", "--smoke", "-i", "inventories/prod", "--host", "web1.example.com"],
    ["bench/cpu-share", "-i", "inventories/prod", "--host", "web1.example.com"],
    ["bench/step-cost", "-i", "inventories/prod", "--host", "web1.example.com"],
])
def test_benchmarks_refuse_a_host_that_is_not_a_sandbox_host(command):
    env = {**os.environ, "PATH": f"{ANSIBLE_PLAYBOOK.parent}:{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, *command], cwd=PROJECT, env=env, text=True, capture_output=True,
                            timeout=120)
    assert result.returncode != 0
    assert "web1.example.com in inventories/prod not a sandbox host" in result.stderr, result.stderr[-2000:]


def test_the_floor_script_refuses_missing_arguments():
    result = subprocess.run(["bash", "bench/floor-deploy", "/srv/apps/x", "1.0.0"], cwd=PROJECT, text=True,
                            capture_output=True, timeout=30)
    assert result.returncode == 2
    assert "APP_HOME VERSION PACKAGE WATCHER PYTHON UV CIRCUSCTL MARKER" in result.stderr


# --- bench/step-cost's figures, from hand-made records (no host, no load) ---------------

_loader = SourceFileLoader("bench_step_cost", str(PROJECT / "bench" / "step-cost"))
step_cost = importlib.util.module_from_spec(importlib.util.spec_from_loader(_loader.name, _loader))
_loader.exec_module(step_cost)


def answered(t, latency, status=200):
    """A bench/loadgen.py record: [t_sent, latency_s, status, version, error, lag_s]."""
    return [t, latency, status, "1.0.0" if status else "", "" if status else "connect", 0.0]


def test_a_step_counts_its_seconds_and_its_tail_and_says_when_the_app_was_back():
    # A step from t=100 to t=102.5, tail 3 s: requests from 100 to 105.5 are its own.
    records = [answered(99.5, 0.9),                                   # before it: not counted
               answered(100.2, 0.004), answered(100.7, 0.006),         # second 0: p50 4 ms
               answered(101.1, 0.800), answered(101.6, 1.200),         # second 1: the worst, p50 800 ms
               answered(102.2, 0.300), answered(102.8, 0.0, 0),        # second 2: the step ends at 2.5
               answered(103.3, 0.050),                                 # second 3: 50 ms, still slow
               answered(104.4, 0.007),                                 # second 4: back (<= 2 x 4 ms)
               answered(105.9, 0.005)]                                 # after its tail: not counted
    figures = step_cost.step_figures(records, 100.0, 102.5, 3.0, steady_p50=0.004)
    assert figures == {"seconds": 2.5, "requests": 8, "failed": 1, "worst_p50_ms": 800.0,
                       "worst_p99_ms": 1200.0, "back_after_s": 2}


def test_a_step_the_app_did_not_recover_from_within_the_tail_says_so():
    records = [answered(100.1, 0.5), answered(101.2, 0.6), answered(102.3, 0.7)]
    assert step_cost.step_figures(records, 100.0, 101.0, 2.0, steady_p50=0.004)["back_after_s"] is None


def test_step_cost_refuses_an_unknown_step_before_anything():
    result = subprocess.run([sys.executable, "bench/step-cost", "--steps", "lookup,rsync"], cwd=PROJECT, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    assert ("--steps: unknown rsync; the steps are check-new, check-new-normal, check-complete,"
            " check-complete-normal, lookup, copy, ssh") in result.stderr
