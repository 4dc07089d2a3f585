"""Helpers for tests that drive Ansible and the sandbox hosts (Molecule verify steps, unit tests).

Tests that need to drive Ansible themselves (bad input, check mode) run ansible-playbook
against the scenario's own inventory, the same way Molecule does.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from ansible_runner.interface import init_command_config

PROJECT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# The sandbox's CA (scripts/sandbox-ca, run by tests/sandbox/create.yml), beside its SSH
# key: the controller trusts it for the index's HTTPS on a published port.
SANDBOX_CA = Path("/var/lib/webdeploy-sandbox/ca/ca.pem")


def playbook_command(scenario_dir, playbook, *args, extra_vars=None, env=None):
    """The command line and environment that run a playbook against the scenario inventory;
    `playbook` is in the scenario's directory or any path (tests/playbooks/..., deploy.yml
    of the project); `env` is added to this process's environment."""
    scenario_dir = Path(scenario_dir)
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(scenario_dir / "inventory"), str(scenario_dir / playbook)]
    if extra_vars is not None:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    return cmd, dict(os.environ,
                     ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
                     ANSIBLE_ROLES_PATH=str(PROJECT / "roles"),
                     ANSIBLE_NOCOLOR="1",
                     ANSIBLE_FORCE_COLOR="0",
                     **(env or {}))


def run_playbook(scenario_dir, playbook, *args, extra_vars=None, env=None):
    """Run a playbook (see playbook_command) and wait for it; a PlaybookRun."""
    cmd, env = playbook_command(scenario_dir, playbook, *args, extra_vars=extra_vars, env=env)
    return run_ansible_playbook(cmd, env)


class PlaybookRun(NamedTuple):
    """A finished ansible-playbook run: its exit status, its output (stdout and stderr
    merged, as a terminal shows them), and ansible-runner's record of it: the events, and
    the stats of the play recap ({'ok': {host: n}, 'changed': ..., 'failures': ...,
    'dark': (unreachable) ...}; None when no play ran)."""
    returncode: int
    stdout: str
    stats: dict | None
    events: list


def run_ansible_playbook(cmd, env, cwd=PROJECT, timeout=900):
    """Run an ansible-playbook command line through ansible-runner, which records the
    events and the stats with its own callback, beside the configured output."""
    with tempfile.TemporaryDirectory(prefix="webdeploy-run-") as private:
        runner = init_command_config(cmd[0], cmdline_args=cmd[1:], envvars=env, host_cwd=str(cwd),
                                     private_data_dir=private, quiet=True, timeout=timeout)
        runner.run()
        return PlaybookRun(runner.rc, runner.stdout.read(), runner.stats, list(runner.events))


def apply_role(scenario_dir, role, role_vars, *args):
    """Apply `role` with `role_vars` (extra vars) to the scenario's hosts."""
    return run_playbook(scenario_dir, PROJECT / "tests/playbooks/apply-role.yml", *args,
                        extra_vars={"role_under_test": role, **role_vars})


def recap(result, hosts=()):
    """{host: {'ok': n, 'changed': n, 'unreachable': n, 'failed': n}}: the play recap of a
    PlaybookRun, from ansible-runner's stats (every host the recap names).

    Fails when the run has no recap, or when the recap leaves out one of `hosts`: a
    check over the hosts of an empty recap would pass on nothing.
    """
    stats = result.stats
    assert stats, f"no PLAY RECAP in the output:\n{result.stdout[-3000:]}"
    keys = {"ok": "ok", "changed": "changed", "unreachable": "dark", "failed": "failures"}
    names = set().union(*(stats.get(k) or {} for k in ("processed", *keys.values())))
    found = {h: {mine: (stats.get(theirs) or {}).get(h, 0) for mine, theirs in keys.items()} for h in names}
    assert found, f"the PLAY RECAP names no host:\n{result.stdout[-3000:]}"
    missing = sorted(set(hosts) - found.keys())
    assert not missing, f"the PLAY RECAP leaves out {missing}:\n{result.stdout[-3000:]}"
    return found


def assert_check_mode_clean(scenario_dir, playbook="converge.yml"):
    """`--check --diff` on a converged host must succeed and report no change."""
    result = run_playbook(scenario_dir, playbook, "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:]
    summary = recap(result)
    changed = {h: s["changed"] for h, s in summary.items() if s["changed"]}
    assert not changed, f"check mode reports changes on a converged host: {changed}\n{result.stdout[-4000:]}"


def ssh(host, user, command):
    """Log in to a test host over SSH as `user` with the sandbox key and run `command`."""
    hostvars = host.ansible.get_variables()
    key = hostvars["ansible_ssh_private_key_file"]
    return subprocess.run(
        ["ssh", "-i", key, "-p", str(hostvars["ansible_port"]), "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         "-o", "ConnectTimeout=10", f"{user}@{hostvars['ansible_host']}", command],
        text=True, capture_output=True, timeout=60, check=False)


def check_once(host):
    """Skip on all but the Debian 12 host: for checks that do not depend on the OS (input
    validation happens in Ansible, before the host is touched), one host is enough."""
    import pytest  # pylint: disable=import-outside-toplevel  (only Molecule tests need it)
    if not host.backend.host.endswith("debian12"):
        pytest.skip("does not depend on the OS: checked on the Debian 12 host")
