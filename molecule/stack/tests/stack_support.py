"""Helpers shared by the stack scenario's test modules (test_stack*.py).

The web hosts are reached through testinfra's Ansible backend; playbooks run like an
operator runs them, against the scenario's inventory (tests/sandbox_support.py).
"""

import json
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager

from sandbox_support import PROJECT, playbook_command, run_playbook

WEB = ["stack-web12", "stack-web13"]


def deploy(scenario_dir, version, app="webxample", *args, playbook="deploy.yml"):
    extra = {"app_name": app}
    if version is not None:
        extra["app_version"] = version
    return run_playbook(scenario_dir, PROJECT / playbook, *args, extra_vars=extra)


def get(host, path, name="webxample.test"):
    """(status, body) of an HTTP request through nginx on the host."""
    out = host.check_output(f"curl -s -o /tmp/body -w '%{{http_code}}' -H 'Host: {name}' http://127.0.0.1{path}; "
                            "echo; cat /tmp/body")
    status, _, body = out.partition("\n")
    return int(status), body


def serving(host, name="webxample.test"):
    status, body = get(host, "/healthz", name)
    return json.loads(body)["version"] if status == 200 else f"HTTP {status}"


def link(host, app, name):
    return host.file(f"/srv/apps/{app}/{name}").linked_to.rsplit("/", 1)[-1]


def deploy_log(host, app="webxample"):
    lines = host.file(f"/srv/apps/{app}/deploy.log").content_string.splitlines()
    return [dict(field.split("=", 1) for field in line.split("\t")[1:]) for line in lines]


def gunicorn_pids(host, app):
    return sorted(int(p) for p in host.check_output(f"pgrep -u {app} -f 'bin/gunicorn' || true").split())


def releases_running(host, app):
    """{pid: release} of the app user's processes: each runs its release's venv python."""
    out = host.check_output(f"for p in $(pgrep -u {app}); do echo $p $(tr '\\0' ' ' < /proc/$p/cmdline); done")
    prefix = f"/srv/apps/{app}/releases/"
    return {int(pid): exe[len(prefix):].split("/")[0] if exe.startswith(prefix) else exe
            for pid, exe, *_ in (line.split() + [''] for line in out.splitlines())}


def canary_left(host, app="webxample"):
    """What is left of the app's canary (roles/release/tasks/canary.yml): its unit's state
    and the processes that use its socket directory, ("inactive", "") when none."""
    with host.sudo():
        state = host.run(f"systemctl show -P ActiveState webdeploy-canary-{app}.service").stdout.strip()
        # [w]: the shell running pgrep has the pattern in its own command line.
        processes = host.run(f"pgrep -af '[w]ebdeploy-canary-{app}/' || true").stdout.strip()
    return state, processes


def priorities(host):
    """[(unit, nice)] of every gunicorn process on the host: Circus's (circus.service) and
    a canary's (webdeploy-canary-<app>.service)."""
    with host.sudo():
        # [g]: the shell running pgrep has the pattern in its own command line.
        out = host.check_output("for p in $(pgrep -f '[g]unicorn'); do"
                                " echo $(grep -m1 -o '[^/]*[.]service' /proc/$p/cgroup) $(ps -o ni= -p $p); done")
    return [(unit, int(nice)) for unit, nice in (line.split() for line in out.splitlines() if len(line.split()) == 2)]


def held_nice(host, point):
    """The nice level of the module process waiting at hold point `point` (its pid is in
    the hold file), or None when there is none."""
    with host.sudo():
        out = host.run(f"ps -o ni= -p $(cat {HOLD_DIR}/{point})").stdout.strip()
    return int(out) if out.lstrip("-").isdigit() else None


def masters(host, app):
    """PIDs of the gunicorn masters Circus runs for the app."""
    with host.sudo():
        return [int(p) for p in host.check_output(f"circusctl list {app}").split(",")]


# What the load loop saw during each case, printed at the end of the run (conftest.py).
LOAD_REPORT = []


def record(case, counts):
    """Keep the load counts of a case for the report at the end."""
    LOAD_REPORT.append((case, counts))


# Requests a second per web host: a gap of 50 ms in serving fails a request, and the two
# hosts' loops leave the 2 cores to the deploy, the app and the scenarios running beside.
LOAD_RATE = 20


@contextmanager
def load(hosts, name="webxample.test"):
    """Requests through nginx on each of `hosts` ({name: host}) while the block runs.

    /usr/local/bin/stack-load (prepare.yml) GETs / one new connection at a time,
    LOAD_RATE a second at most, a bounded loop that stops when the block ends. Yields a dict that is filled, after
    the block, with each host's counts: {host: {"ok", "failed", "versions", "errors"}}.
    """
    for h in hosts.values():
        h.run("rm -f /run/stack-load.stop /run/stack-load.json; "
              f"systemd-run --unit=stack-load --collect /usr/local/bin/stack-load {name} /run/stack-load.json {LOAD_RATE}")
    counts = {}
    time.sleep(2)
    try:
        yield counts
    finally:
        time.sleep(2)
        for host_name, h in hosts.items():
            h.run("touch /run/stack-load.stop")
            for _ in range(100):
                if h.file("/run/stack-load.json").exists:
                    break
                time.sleep(0.2)
            counts[host_name] = json.loads(h.file("/run/stack-load.json").content_string)


def deploy_under_load(scenario_dir, hosts, version, case, app="webxample", playbook="deploy.yml"):
    """(result, counts) of a deploy (or `playbook`) run while `hosts` are under load; the
    counts are recorded for the report under `case`."""
    with load(hosts, f"{app}.test") as counts:
        result = deploy(scenario_dir, version, app, playbook=playbook)
    record(case, counts)
    return result, counts


HOLD_DIR = "/run/webdeploy-hold"  # the release role's hold points (roles/release/README.md)


def deploy_with(scenario_dir, version, app, hold, action, hosts, *args, timeline=None, observe=None):
    """Run a deploy stopped at the release role's hold point `hold` (-e release_fault_hold),
    then do `action` there: "kill" (SIGKILL ansible-playbook and its SSH clients, then the
    process holding on the host, as a crash at that step would) or a callable, given the
    ansible-playbook process, after which the hold is let go and the deploy goes on. The
    hold is watched for on each testinfra host of `hosts`; a later host reaching it (serial
    rollout) is let go at once. A list given as `timeline` receives (time.monotonic() when
    it arrived, line) for each output line. `observe`, if given, is called with the host
    when the hold is reached, before the action. Returns (output, returncode, fired)."""
    cmd, env = playbook_command(scenario_dir, PROJECT / "deploy.yml", *args,
                                extra_vars={"app_name": app, "app_version": version, "release_fault_hold": hold},
                                env={"PYTHONUNBUFFERED": "1"})  # each line as it comes
    out, fired = [], False
    path = f"{HOLD_DIR}/{hold}"
    for host in hosts.values():
        host.run(f"rm -f {path}")
    with subprocess.Popen(cmd, env=env, cwd=PROJECT, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, start_new_session=True) as proc:
        def read():
            for line in proc.stdout:
                out.append(line)
                if timeline is not None:
                    timeline.append((time.monotonic(), line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while proc.poll() is None:
            for host in hosts.values():
                pid = host.run(f"cat {path} 2>/dev/null").stdout.strip()
                if not pid.isdigit():
                    continue
                if fired:
                    host.run(f"rm -f {path}")  # the next host of a serial rollout: go on
                    continue
                fired = True
                if observe is not None:
                    observe(host)
                if action == "kill":
                    os.killpg(proc.pid, signal.SIGKILL)
                    host.run(f"kill -KILL {pid}; rm -f {path}")
                    break
                action(proc)
                host.run(f"rm -f {path}")
            time.sleep(0.3)
        proc.wait()
        reader.join(30)
    return "".join(out), proc.returncode, fired
