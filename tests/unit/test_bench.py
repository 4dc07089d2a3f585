"""The benchmarks refuse to touch hosts they were not made for, before doing anything."""

import os
import subprocess
import sys

import pytest
from sandbox_support import ANSIBLE_PLAYBOOK, PROJECT


# A production inventory's host: the benchmarks delete releases, restart apps and skip
# SSH host key checks, so they must stop before reaching it (it does not even resolve).
@pytest.mark.parametrize("command", [
    ["bench/deploy_speed", "--smoke", "-i", "inventories/prod", "--hosts", "web1.example.com"],
    ["bench/downtime", "--smoke", "-i", "inventories/prod", "--host", "web1.example.com"],
    ["bench/cpu-share", "-i", "inventories/prod", "--host", "web1.example.com"],
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
