"""What bench/downtime and bench/deploy_speed share: hosts read from an inventory and
reached with plain ssh, ansible-playbook runs logged to a file, the environment both
need. Standard library only."""

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_project_environment():
    """Run from the repository with its .venv, ansible.cfg and the sandbox vault password."""
    os.chdir(ROOT)
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    os.environ.setdefault("ANSIBLE_VAULT_IDENTITY_LIST", f"sandbox@{ROOT}/tests/sandbox/vault-password")
    os.environ["PATH"] = f"{ROOT}/.venv/bin:{os.environ['PATH']}"


def hostvars(inventory, names=None):
    """{name: variables} as ansible-inventory resolves them, for names (default: every host)."""
    out = subprocess.run(["ansible-inventory", "-i", inventory, "--list"],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    hv = json.loads(out)["_meta"]["hostvars"]
    missing = [n for n in names or [] if n not in hv]
    if missing:
        raise SystemExit(f"bench: {', '.join(missing)} not in {inventory}")
    return {n: hv[n] for n in names} if names else hv


class Host:
    """One web host as the inventory describes it, reached with plain ssh."""

    def __init__(self, name, hv, app, app_root, multiplex=False):
        self.name, self.hv, self.app = name, hv, app
        self.ssh = ["ssh", "-p", str(hv.get("ansible_port", 22)), "-o", "BatchMode=yes"]
        if hv.get("ansible_ssh_private_key_file"):
            self.ssh += ["-i", hv["ansible_ssh_private_key_file"]]
        self.ssh += shlex.split(hv.get("ansible_ssh_common_args", ""))
        if multiplex:  # one connection for all commands, as Fabric keeps one per host
            self.ssh += ["-o", "ControlMaster=auto", "-o", "ControlPersist=120s",
                         "-o", "ControlPath=/tmp/webdeploy-bench-%C"]
        self.ssh.append(f"{hv.get('ansible_user', 'root')}@{hv.get('ansible_host', name)}")
        self.home = f"{app_root}/{app}"

    def run(self, command, **kw):
        return subprocess.run(self.ssh + [command], check=True, text=True, capture_output=True, **kw).stdout

    def current(self):
        return os.path.basename(self.run(f"readlink {self.home}/current").strip())

    def has_release(self, version):
        return subprocess.run(self.ssh + [f"test -f {self.home}/releases/{version}/venv/bin/python"]).returncode == 0


def playbook(inventory, log, name, *extra, env=None, fail=True):
    """ansible-playbook with the project's settings; its output goes to the log file.
    Returns (rc, seconds, output)."""
    cmd = ["ansible-playbook", "-i", inventory, name, *extra]
    log.write(f"\n$ {shlex.join(cmd)}{' with ' + str(env) if env else ''}\n")
    log.flush()
    t = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.monotonic() - t
    log.write(r.stdout + r.stderr)
    log.flush()
    if r.returncode and fail:
        raise SystemExit(f"bench: {shlex.join(cmd)} failed (rc {r.returncode}), see {log.name}")
    return r.returncode, seconds, r.stdout


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
