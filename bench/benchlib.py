"""What bench/downtime and bench/deploy_speed share: hosts read from an inventory and
reached with plain ssh, ansible-playbook runs logged to a file, the environment both
need; and what bench/downtime and bench/plot.py both read in bench/loadgen.py's
records. Standard library only."""

import json
import math
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_project_environment():
    """Run from the repository with its .venv, ansible.cfg, the sandbox vault password and
    its podman settings (runc: bench/downtime inspects and updates the host's container)."""
    os.chdir(ROOT)
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tests/containers.conf"))
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    os.environ.setdefault("ANSIBLE_VAULT_IDENTITY_LIST", f"sandbox@{ROOT}/tests/sandbox/vault-password")
    os.environ["PATH"] = f"{ROOT}/.venv/bin:{os.environ['PATH']}"


def hostvars(inventory, names):
    """{name: variables} as ansible-inventory resolves them. Only sandbox hosts (created
    by tests/sandbox/create.yml, which sets sandbox_image): the benchmarks delete
    releases, restart apps and skip SSH host key checks, which no real host should get."""
    # --playbook-dir: the variables of group_vars/ beside the playbooks too (the shared
    # paths, group_vars/all/paths.yml), as a playbook run sees them.
    out = subprocess.run(["ansible-inventory", "-i", inventory, "--playbook-dir", str(ROOT), "--list"],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    hv = json.loads(out)["_meta"]["hostvars"]
    missing = [n for n in names if n not in hv]
    if missing:
        raise SystemExit(f"bench: {', '.join(missing)} not in {inventory}")
    real = [n for n in names if not hv[n].get("sandbox_image")]
    if real:
        raise SystemExit(f"bench: {', '.join(real)} in {inventory} not a sandbox host (no sandbox_image):"
                         " the benchmarks only run on hosts made by tests/sandbox/create.yml")
    return {n: hv[n] for n in names}


def role_setting(hv, role, name):
    """A role variable as a host gets it: the inventory's value, else the role's own
    (defaults/main.yml or vars/main.yml, `name: value` on one line)."""
    if name in hv:
        return str(hv[name])
    for part in ("defaults", "vars"):
        text = (ROOT / "roles" / role / part / "main.yml").read_text()
        m = re.search(rf"^{re.escape(name)}: *(\S+) *$", text, re.M)
        if m:
            return m.group(1).strip("\"'")
    raise SystemExit(f"bench: {name} not found in role {role}")


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
        # The release role's tools and its "release complete" marker, for the scripts
        # that do its work without it (bench/floor-deploy, the resets).
        self.python = role_setting(hv, "release", "release_python")
        self.uv, self.circusctl = hv["webdeploy_uv"], hv["webdeploy_circusctl"]
        self.marker = role_setting(hv, "release", "__release_marker")

    def run(self, command, **kw):
        return subprocess.run(self.ssh + [command], check=True, text=True, capture_output=True, **kw).stdout

    def current(self):
        return os.path.basename(self.run(f"readlink {self.home}/current").strip())

    def has_release(self, version):
        return subprocess.run(self.ssh + [f"test -f {self.home}/releases/{version}/venv/bin/python"]).returncode == 0


def playbook(inventory, log, name, *extra, env=None, fail=True, nice=0):
    """ansible-playbook with the project's settings (under `nice -n NICE` when nice is not 0);
    its output goes to the log file. Returns (rc, seconds, output)."""
    cmd = [*niced(nice), "ansible-playbook", "-i", inventory, name, *extra]
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


def niced(nice):
    """The prefix that runs a command at this niceness ([] for 0). With autogroup scheduling
    (kernel.sched_autogroup_enabled, for the processes of the root CPU cgroup, as this
    script and ansible-playbook here), a process's nice level counts only among the
    processes of its session; the session's autogroup competes with the web host's
    container (a cgroup) at full weight, whatever its processes' nice levels. So the
    command runs in a session of its own (setsid) whose autogroup gets the level too."""
    if not nice:
        return []
    return ["setsid", "--wait", "sh", "-c",
            f'echo {int(nice)} 2>/dev/null > /proc/self/autogroup; exec nice -n {int(nice)} "$@"', "niced"]


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def raw_setups(raw):
    """{set-up: {label: loadgen data}} of bench/downtime's raw data: {"setups": [...], "shared":
    {"ours": ..., "baseline": ...}, "separated": {...}}; raw data of the runs before the
    set-ups ({"ours": ..., "baseline": ...}, the load inside the host) is the shared one's."""
    if "ours" in raw or "baseline" in raw:
        return {"shared": {k: raw[k] for k in ("ours", "baseline") if k in raw}}
    return {s: raw[s] for s in raw.get("setups", ("shared", "separated")) if s in raw}


# bench/loadgen.py's records: [t_sent, latency_s, status, version, error, lag_s], status 0
# when no HTTP answer came. The report's tables and the plot count them the same way.

def failed(record):
    """Not a 2xx answer: an error status, or no answer at all."""
    return not 200 <= record[2] < 300


def latencies(records):
    """Sorted latencies (s) of the requests that got an answer, whatever its status."""
    return sorted(r[1] for r in records if r[2])


def pct(values, p):
    """Nearest-rank percentile of an already sorted list: the smallest value with at least
    p % of the values at or below it (None when empty)."""
    if not values:
        return None
    return values[min(len(values), max(1, math.ceil(p * len(values) / 100))) - 1]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)
