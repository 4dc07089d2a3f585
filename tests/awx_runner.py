"""Run a playbook the way AWX runs a job: through ansible-runner, from a private data
directory laid out as AWX lays it out (docs/awx.md).

    private_data_dir/
      project/        the project checkout (here a symlink to the repository, or to any
                      directory with playbooks; ansible.cfg at its root applies)
      inventory       the inventory (a symlink to an inventory directory or file)
      env/extravars   extra vars: survey answers, artifacts of earlier workflow nodes
      env/cmdline     the options AWX adds: --limit, --vault-id <id>@prompt, ...
      env/passwords   answers to the prompts, keyed by regex: the vault password
      env/settings    job_timeout, idle_timeout
      env/envvars     PATH with this venv first (its ansible-playbook)
      artifacts/      written by the run: events, stdout, status, rc

    result = run_job("playbooks/deploy.yml", inventory=PROJECT / "inventories/sandbox",
                     extravars={"app_version": "1.2.3", **awx_job_vars(42)}, limit="web-debian12",
                     vault_passwords=SANDBOX_VAULT)
    result.status, result.rc, result.stats, stats_data(result.events)

Vault passwords are answered as AWX answers them: for each vault id, `--vault-id
<id>@prompt` on the command line and the prompt `Vault password (<id>): ` answered from
env/passwords; a password without an id (key "") answers `Vault password: `
(--ask-vault-pass). ANSIBLE_VAULT_IDENTITY_LIST of the calling environment is left out
of the job, so that the prompts are what decrypts.
"""

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections import namedtuple
from pathlib import Path

import ansible_runner

PROJECT = Path(__file__).resolve().parent.parent
# The sandbox's test-only vault password: an executable file that prints it, as Ansible
# runs it for --vault-id sandbox@tests/sandbox/vault-password.
SANDBOX_VAULT = {"sandbox": subprocess.run([str(PROJECT / "tests/sandbox/vault-password")], capture_output=True,
                                           text=True, check=True, timeout=30).stdout.strip()}

JobResult = namedtuple("JobResult", "status rc events stats")


def awx_job_vars(job_id=1, user_name="admin", template="Deploy"):
    """Some of the extra vars AWX adds to every job (awx_* and their tower_* twins); the
    release role writes awx_user_name and awx_job_id to the deploy log."""
    return {"awx_job_id": job_id, "tower_job_id": job_id, "awx_user_name": user_name, "tower_user_name": user_name,
            "awx_job_template_name": template, "awx_job_launch_type": "manual"}


def vault_prompts(vault_passwords):
    """(command line options, {prompt regex: password}) for {vault id or "": password}."""
    options, answers = [], {}
    for vault_id, password in (vault_passwords or {}).items():
        if vault_id:
            options += ["--vault-id", f"{vault_id}@prompt"]
            answers[rf"Vault password \({re.escape(vault_id)}\):\s*?$"] = password
        else:
            options.append("--ask-vault-pass")
            answers[r"Vault password:\s*?$"] = password
    return options, answers


def lay_out(private_data_dir, *, project=PROJECT, inventory=None, extravars=None, limit=None,
            vault_passwords=None, cmdline=(), job_timeout=900, idle_timeout=300):
    """Write the private data directory of one job; returns its path."""
    root = Path(private_data_dir)
    env = root / "env"
    env.mkdir(parents=True, exist_ok=True)
    (root / "project").symlink_to(Path(project).resolve(), target_is_directory=True)
    if inventory is not None:
        (root / "inventory").symlink_to(Path(inventory).resolve())
    options, answers = vault_prompts(vault_passwords)
    options += ["--limit", limit] if limit else []
    options += list(cmdline)
    files = {
        "extravars": extravars or {},
        "passwords": answers,
        "settings": {"job_timeout": job_timeout, "idle_timeout": idle_timeout, "pexpect_timeout": 5},
        # The venv's ansible-playbook, whatever PATH the tests run with.
        "envvars": {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                    "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    }
    for name, data in files.items():
        path = env / name
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        path.chmod(0o600)
    if options:
        (env / "cmdline").write_text(shlex.join(options), encoding="utf-8")
    return root


@contextlib.contextmanager
def _without_vault_identity_list():
    saved = os.environ.pop("ANSIBLE_VAULT_IDENTITY_LIST", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["ANSIBLE_VAULT_IDENTITY_LIST"] = saved


def run_job(playbook, private_data_dir=None, **layout):
    """Run `playbook` (relative to the project) as an AWX job; returns a JobResult.

    Without private_data_dir a temporary one is used and removed afterwards; the events
    are read before that. `layout` takes the keyword arguments of lay_out().
    """
    with contextlib.ExitStack() as stack:
        if private_data_dir is None:
            private_data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="awx-job-"))
        root = lay_out(private_data_dir, **layout)
        stack.enter_context(_without_vault_identity_list())
        runner = ansible_runner.run(private_data_dir=str(root), playbook=str(playbook), quiet=True)
        return JobResult(runner.status, runner.rc, list(runner.events), runner.stats)


def stats_data(events):
    """The set_stats data of the job (what AWX keeps as the job's artifacts)."""
    for event in events:
        if event.get("event") == "playbook_on_stats":
            return event.get("event_data", {}).get("artifact_data", {})
    return {}


def stdout(events):
    """The job's output, as AWX shows it."""
    return "\n".join(event.get("stdout", "") for event in events if event.get("stdout"))
