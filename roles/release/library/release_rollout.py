#!/usr/bin/python
"""Ansible module of the release role: replace an app's processes, new ones ready first."""

import os
import pwd
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_hold import hold
from ansible.module_utils.release_output import last_lines

DOCUMENTATION = r"""
module: release_rollout
short_description: Replace a Circus watcher's processes with new ones, each ready before any old one stops
description:
  - Starts O(numprocesses) new processes next to the old ones (C(circusctl set <name> numprocesses));
    they run
    the release that C(current) names. Waits until every new gunicorn master has O(workers)
    workers marked ready (the gunicorn hooks of the webapp role write C(<master>.<worker>) in
    O(ready_dir) when a worker is about to accept), then stops the old ones gracefully
    (numprocesses back: Circus stops the oldest). The old processes serve throughout, on the
    socket Circus owns; a reload of N processes takes about the app's boot time.
  - O(surge) N, between 1 and O(numprocesses) - 1, rolls out N processes at a time: N new ones
    start next to the old, and once they are ready N old ones stop, then the next N. Each
    step's boot competes with serving for the CPU with N processes instead of all of them
    (on a busy host the p99 across the switch is lower) and the host runs N more processes
    instead of twice as many; the rollout takes about one boot time per step, and each step
    gets O(timeout). A step that fails leaves the old processes not yet stopped serving, with
    the new ones of the earlier steps. 0 (the default): all at once.
  - A stopped watcher is started, and waited for the same way.
  - O(stop_first) lists processes to stop before anything else (a release that failed its
    rollout); the others keep serving until the new ones are ready.
  - A new process that exits while it boots, or new processes not ready within O(timeout)
    seconds, end the rollout at once with C(ready=false) and the reason; the old processes
    then still run, and the new ones too: the caller switches C(current) back and calls
    the module again with them in O(stop_first).
  - Then no process of another release may outlive the rollout: on the shared socket it would
    go on answering with the old code. Circus waits for the masters it stops, but not for a
    process it lost track of (a worker orphaned by a master that died). Processes of O(user)
    whose program lies under another release (the venv's python names its release) are
    waited for up to O(strays_timeout) seconds; any left make C(ready=false).
  - The module never fails on a bad release; it fails only when Circus cannot be asked.
options:
  name: {description: The watcher (the app's name)., type: str, required: true}
  circusctl: {description: Path of circusctl., type: path, required: true}
  numprocesses: {description: The watcher's configured number of processes., type: int, required: true}
  workers: {description: gunicorn workers per process., type: int, required: true}
  ready_dir: {description: Where the workers mark themselves ready., type: path, required: true}
  release_dir: {description: The directory of the release the new processes must run., type: path, required: true}
  timeout: {description: Seconds the new processes may take to be ready (each step's with O(surge))., type: int, default: 30}
  surge: {description: New processes started at a time (0 all)., type: int, default: 0}
  stop_timeout: {description: Seconds the old processes may take to stop (above graceful_timeout)., type: int, default: 60}
  stop_first: {description: PIDs to stop first (their workers too)., type: list, elements: int, default: []}
  log_file: {description: The watcher's stderr log; its last lines go into the reason., type: path}
  user: {description: The app's user, whose processes of other releases are waited for., type: str}
  strays_timeout: {description: Seconds processes of other releases may take to end., type: int, default: 30}
  hold: {description: Fault tests only (release_fault_hold). C(rollout) holds with the new processes started next to the old., type: str, default: ''}
  hold_dir: {description: Where a hold writes its file., type: path, default: /run/webdeploy-hold}
"""

RETURN = r"""
ready:
  description: Whether the new processes were all ready (and the old ones then stopped).
  type: bool
reason:
  description: Why not, one sentence (with the last lines of the app's stderr log); empty when ready.
  type: str
strays: {description: Processes of other releases still running, as "pid program" (when not ready for that)., type: list}
old: {description: The processes that served before (stopped when ready)., type: list}
new: {description: The processes started., type: list}
boot_seconds: {description: From the start of the new processes until all were ready., type: float}
surge: {description: New processes started at a time (0 all at once: O(surge) 0 or not below O(numprocesses), or a stopped watcher)., type: int}
seconds: {description: The whole rollout., type: float}
"""

POLL = 0.2


class Circus:
    """circusctl, given enough time for commands that wait (its default gives up after 5 s)."""

    def __init__(self, module, circusctl, name, timeout):
        self.module, self.circusctl, self.name, self.timeout = module, circusctl, name, timeout

    def run(self, *args):
        argv = [self.circusctl, "--timeout", str(self.timeout)] + list(args)
        rc, out, err = self.module.run_command(argv)
        if rc != 0 or out.strip().lower().startswith("error"):
            self.module.fail_json(msg=f"{' '.join(argv)} failed: {(err or out).strip()}")
        return out.strip()

    def status(self):
        return self.run("status", self.name)

    def pids(self):
        out = self.run("list", self.name)
        return [int(p) for p in out.split(",") if p.strip().isdigit()]

    def numprocesses(self):
        return int(self.run("numprocesses", self.name))


def alive(pid):
    """Whether pid runs (a zombie does not: it has exited and awaits its parent)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def program(pid):
    """argv[0] of pid: the release's venv python for an app process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().split(b"\0")[0].decode("utf-8", "replace")
    except OSError:
        return ""


def ready_workers(master, names):
    """Workers of `master` marked ready in `names` (the ready directory's listing) that still run
    as its children: a marker outlives a killed worker, and pids are reused."""
    workers = []
    for name in names:
        head, _, tail = name.partition(".")
        if head == str(master) and tail.isdigit() and parent(int(tail)) == master:
            workers.append(int(tail))
    return sorted(workers)


def kill(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def forget_stale_markers(ready_dir):
    """Remove the markers of masters that no longer run (killed ones never removed theirs)."""
    for name in listing(ready_dir):
        master = name.partition(".")[0]
        if master.isdigit() and not alive(int(master)):
            try:
                os.unlink(os.path.join(ready_dir, name))
            except OSError:
                pass


def listing(ready_dir):
    try:
        return os.listdir(ready_dir)
    except OSError:
        return []


def wait_ready(new, workers, ready_dir, release_dir, deadline, timeout):
    """Wait until each new master has `workers` ready workers, until `deadline` (time.monotonic;
    `timeout` is its length, for the message). Returns '' when they have, else why not. A master
    that exits, or that runs another release, ends the wait at once."""
    releases = os.path.dirname(release_dir.rstrip("/")) + "/"
    counts = {}
    while True:
        names = listing(ready_dir)
        for pid in new:
            if not alive(pid):
                return f"process {pid} exited while it booted"
            # Until it has exec'd the release's python, a process runs Circus' env wrapper.
            runs = program(pid)
            if runs.startswith(releases) and not runs.startswith(release_dir.rstrip("/") + "/"):
                return f"process {pid} runs {runs}, not the release {release_dir}"
            counts[pid] = len(ready_workers(pid, names))
        if all(counts[pid] >= workers for pid in new):
            return ""
        if time.monotonic() >= deadline:
            done = sum(min(n, workers) for n in counts.values())
            return (f"{done} of {len(new) * workers} workers were ready after {timeout} s"
                    f" (ready per process: {', '.join(f'{p}: {counts[p]}' for p in new)})")
        time.sleep(POLL)


def wait_gone(pids, timeout):
    """Wait until none of pids runs; returns those still running after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL)


def owner(pid):
    """The uid pid runs as; None when it is gone."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def processes():
    return sorted(int(n) for n in os.listdir("/proc") if n.isdigit())


def strays(uid, release_dir):
    """'pid program' of the processes of `uid` that run a release other than `release_dir`."""
    releases = os.path.dirname(release_dir.rstrip("/")) + "/"
    own = release_dir.rstrip("/") + "/"
    found = []
    for pid in processes():
        if owner(pid) != uid:
            continue
        runs = program(pid)
        if runs.startswith(releases) and not runs.startswith(own) and alive(pid):
            found.append(f"{pid} {runs}")
    return found


def uid_of(user):
    return pwd.getpwnam(user).pw_uid


def wait_strays(uid, release_dir, timeout):
    """Wait until no process of another release runs; those left after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = strays(uid, release_dir)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL)


def wait_batch(p, circus, known, count):
    """Wait for `count` processes that Circus started, not in `known`, then until they are
    ready; (their pids, '' or why not). Each batch gets p["timeout"]."""
    deadline = time.monotonic() + p["timeout"]
    while True:
        batch = [pid for pid in circus.pids() if pid not in known and pid not in p["stop_first"]]
        if len(batch) >= count or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    reason = wait_ready(batch, p["workers"], p["ready_dir"], p["release_dir"], deadline, p["timeout"])
    if not reason and len(batch) < count:
        reason = f"Circus started {len(batch)} of {count} processes"
    return batch, reason


def rollout(p, circus):
    result = {"ready": False, "reason": "", "old": [], "new": [], "strays": [], "boot_seconds": None, "surge": 0}
    # circusctl starts a Python each time (about 0.25 s): as few calls as it takes.
    before = circus.pids()
    if not before and circus.status() in ("stopped", "stopping"):
        circus.run("start", p["name"], "--waiting")
        old, started = [], True
    else:
        old, started = [pid for pid in before if pid not in p["stop_first"]], False
        doomed = [pid for pid in p["stop_first"] if alive(pid)]
        for pid in doomed:
            # gunicorn's TERM is graceful: its workers finish their requests.
            kill(pid, signal.SIGTERM)
        left = wait_gone(doomed, p["stop_timeout"])
        if left:
            result["reason"] = f"processes {', '.join(map(str, left))} still run {p['stop_timeout']} s after SIGTERM"
            return result
    result["old"] = old
    surge = p.get("surge") or 0
    step = surge if old and 0 < surge < p["numprocesses"] else p["numprocesses"]
    result["surge"] = step if step < p["numprocesses"] else 0
    boot, new, left_old = time.monotonic(), [], len(old)
    while len(new) < p["numprocesses"]:
        count = min(step, p["numprocesses"] - len(new))
        if not (started and not new):
            # The old ones, and `count` new ones next to them. Circus starts the new ones
            # at once (warmup_delay 0), replacing one stopped first that it had not reaped yet.
            circus.run("set", p["name"], "numprocesses", str(left_old + len(new) + count), "--waiting")
            if not new:
                hold("rollout", p.get("hold", ""), p.get("hold_dir", ""))
        batch, reason = wait_batch(p, circus, old + new, count)
        new += batch
        if reason:
            result["boot_seconds"] = round(time.monotonic() - boot, 2)
            # All of them, with any replacement Circus started for one that exited.
            result["new"] = [pid for pid in circus.pids() if pid not in old and pid not in p["stop_first"]]
            said = last_lines(p["log_file"])
            result["reason"] = reason + (f". The app's last lines on stderr: {said}" if said else "")
            return result
        if len(new) < p["numprocesses"] and left_old:
            # A step done: as many old ones stop (Circus stops the oldest) as new ones came.
            left_old -= min(count, left_old)
            circus.run("set", p["name"], "numprocesses", str(left_old + len(new)), "--waiting")
    result["boot_seconds"] = round(time.monotonic() - boot, 2)
    result["new"] = new
    if old:
        # Circus stops the oldest: the old processes, each after its requests are done.
        circus.run("set", p["name"], "numprocesses", str(p["numprocesses"]), "--waiting")
    left = wait_gone(old, p["stop_timeout"])
    if left:
        result["reason"] = f"old processes {', '.join(map(str, left))} still run after the new ones were ready"
        return result
    forget_stale_markers(p["ready_dir"])
    if p.get("user"):
        left = wait_strays(uid_of(p["user"]), p["release_dir"], p["strays_timeout"])
        if left:
            result["strays"] = left
            result["reason"] = (f"processes of another release still run {p['strays_timeout']} s after the reload"
                                f" (pid and program: {', '.join(left)})")
            return result
    result["ready"] = True
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "circusctl": {"type": "path", "required": True},
            "numprocesses": {"type": "int", "required": True},
            "workers": {"type": "int", "required": True},
            "ready_dir": {"type": "path", "required": True},
            "release_dir": {"type": "path", "required": True},
            "timeout": {"type": "int", "default": 30},
            "surge": {"type": "int", "default": 0},
            "stop_timeout": {"type": "int", "default": 60},
            "stop_first": {"type": "list", "elements": "int", "default": []},
            "log_file": {"type": "path"},
            "user": {"type": "str"},
            "strays_timeout": {"type": "int", "default": 30},
            "hold": {"type": "str", "default": ""},
            "hold_dir": {"type": "path", "default": "/run/webdeploy-hold"},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=False, ready=False, reason="check mode: nothing done", old=[], new=[])
    circus = Circus(module, module.params["circusctl"], module.params["name"], module.params["stop_timeout"] + 30)
    started = time.monotonic()
    result = rollout(module.params, circus)
    result["seconds"] = round(time.monotonic() - started, 2)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
