"""The release role's rollout (roles/release/library/release_rollout.py) against a stand-in
for Circus and /proc: the old processes stop only once every new worker is ready, a new
process that exits or never gets ready ends the rollout at once with the old ones still
serving, and a failed release's processes are stopped first on the way back."""

import signal

import pytest
from release_modules import load

rollout_module = load("release_rollout")

NEW = "/srv/apps/app/releases/2.0.0"
OLD = "/srv/apps/app/releases/1.0.0"
PYTHON = "/venv/bin/python"  # what an app process runs: its release's venv python


class Host:
    """Circus, /proc, the ready directory and the clock of a host, in memory. Processes are
    pid -> (parent, program); Circus' watcher is an ordered list of masters (oldest first)."""

    def __init__(self, masters, numprocesses=None, status="active", program=NEW + PYTHON):
        self.now, self.events, self.procs, self.markers = 0.0, [], {}, set()
        self.watcher = list(masters)
        self.numprocesses = len(masters) if numprocesses is None else numprocesses
        self.status, self.program, self.next_pid, self.removed = status, program, 200, []
        for pid in masters:
            self.procs[pid] = (1, OLD + PYTHON)

    # Circus, as circusctl answers
    def run(self, *args):
        command, name, *rest = args
        assert name == "app"
        self.events.append((self.now, command, *[a for a in rest if a != "--waiting"]))
        if command == "start":
            self.status = "active"
            self.fill()
        elif command == "set" and rest[0] == "numprocesses":
            # As Circus' manage_processes: forget the dead, start or stop (the oldest) to fit.
            self.numprocesses = int(rest[1])
            self.fill()
            for pid in self.watcher[: len(self.watcher) - self.numprocesses]:
                self.exit(pid)
        return ""

    def fill(self):
        self.watcher = [p for p in self.watcher if p in self.procs]
        while len(self.watcher) < self.numprocesses:
            self.next_pid += 1
            self.procs[self.next_pid] = (1, self.program)
            self.watcher.append(self.next_pid)

    def exit(self, pid):
        self.procs.pop(pid, None)
        self.watcher = [p for p in self.watcher if p != pid]
        self.markers = {m for m in self.markers if not m.startswith(f"{pid}.")}

    def ready(self, master, *workers):
        for worker in workers:
            self.procs[worker] = (master, self.procs[master][1])
            self.markers.add(f"{master}.{worker}")

    # the module's view of the host
    def patch(self, monkeypatch, at=None):
        """`at`: {time: callable(host)}, run once the clock has reached that time."""
        at = dict(at or {})

        def sleep(seconds):
            self.now += seconds
            for when in sorted(t for t in at if t <= self.now):
                at.pop(when)(self)

        clock = type("Clock", (), {"monotonic": staticmethod(lambda: self.now), "sleep": staticmethod(sleep)})
        monkeypatch.setattr(rollout_module, "time", clock)
        monkeypatch.setattr(rollout_module, "alive", lambda pid: pid in self.procs)
        monkeypatch.setattr(rollout_module, "parent", lambda pid: self.procs.get(pid, (None,))[0])
        monkeypatch.setattr(rollout_module, "program", lambda pid: self.procs.get(pid, (0, ""))[1])
        monkeypatch.setattr(rollout_module, "listing", lambda _: sorted(self.markers))
        monkeypatch.setattr(rollout_module, "kill", lambda pid, signum: self.events.append((self.now, "kill", pid, signum)))
        monkeypatch.setattr(rollout_module.os, "unlink", lambda path: self.removed.append(path))
        return FakeCircus(self)


class FakeCircus:
    def __init__(self, host):
        self.host = host

    def run(self, *args):
        return self.host.run(*args)

    def status(self):
        return self.host.status

    def pids(self):
        return list(self.host.watcher)

    def numprocesses(self):
        return self.host.numprocesses


# The module looks every POLL seconds: "at once" is within one look.
ONE_LOOK = rollout_module.POLL + 0.01


def params(**overrides):
    p = {"name": "app", "numprocesses": 2, "workers": 2, "ready_dir": "/run/webdeploy-ready/app",
         "release_dir": NEW, "timeout": 30, "stop_timeout": 40, "stop_first": [], "log_file": None}
    p.update(overrides)
    return p


def commands(host):
    return [e[1:] for e in host.events]


def test_the_old_processes_stop_only_once_every_new_worker_is_ready(monkeypatch):
    host = Host([101, 102])
    circus = host.patch(monkeypatch, at={1.0: lambda h: h.ready(201, 301, 302), 4.0: lambda h: h.ready(202, 303),
                                         6.0: lambda h: h.ready(202, 304)})
    result = rollout_module.rollout(params(), circus)
    assert result["ready"] is True and result["reason"] == ""
    assert (result["old"], result["new"]) == ([101, 102], [201, 202])
    assert commands(host) == [("set", "numprocesses", "4"), ("set", "numprocesses", "2")]
    decr_at = host.events[1][0]
    assert decr_at == pytest.approx(6.0, abs=ONE_LOOK), "the old ones stopped as soon as the last worker was ready, not before"
    assert host.watcher == [201, 202]
    assert host.removed == [], "the markers of running masters stay"
    assert result["boot_seconds"] == pytest.approx(6.0, abs=ONE_LOOK)


def test_a_new_process_that_exits_while_it_boots_ends_the_rollout_at_once(monkeypatch, tmp_path):
    log = tmp_path / "stderr.log"
    log.write_text("[INFO] Booting worker with pid: 301\nImportError: No module named 'nope'\n"
                   "[ERROR] Worker (pid:301) exited with code 3\n[ERROR] Shutting down: Master\n")
    host = Host([101, 102])
    circus = host.patch(monkeypatch, at={2.0: lambda h: h.exit(202)})
    result = rollout_module.rollout(params(log_file=str(log)), circus)
    assert result["ready"] is False
    assert result["reason"] == ("process 202 exited while it booted. The app's last lines on stderr: "
                                "[INFO] Booting worker with pid: 301 / ImportError: No module named 'nope' / "
                                "[ERROR] Worker (pid:301) exited with code 3 / [ERROR] Shutting down: Master")
    assert host.now == pytest.approx(2.0, abs=ONE_LOOK)
    assert commands(host) == [("set", "numprocesses", "4")], "the old processes were not stopped"
    assert 101 in host.procs and 102 in host.procs
    assert result["new"] == [201]


def test_new_processes_not_ready_in_time_end_the_rollout_with_a_count(monkeypatch):
    host = Host([101, 102])
    circus = host.patch(monkeypatch, at={1.0: lambda h: h.ready(201, 301, 302), 2.0: lambda h: h.ready(202, 303)})
    result = rollout_module.rollout(params(timeout=30), circus)
    assert result["ready"] is False
    assert result["reason"] == "3 of 4 workers were ready after 30 s (ready per process: 201: 2, 202: 1)"
    assert host.now == pytest.approx(30.0, abs=ONE_LOOK)
    assert commands(host) == [("set", "numprocesses", "4")]
    assert result["new"] == [201, 202]


def test_markers_of_workers_that_no_longer_run_do_not_count(monkeypatch):
    host = Host([101])
    host.procs[999] = (1, "/usr/bin/sleep")  # a reused pid: no longer 201's worker
    host.markers = {"201.999", "201.998", "201.junk", "2011.301"}
    circus = host.patch(monkeypatch)
    result = rollout_module.rollout(params(numprocesses=1, workers=1, timeout=5), circus)
    assert result["reason"] == "0 of 1 workers were ready after 5 s (ready per process: 201: 0)"


def test_a_process_of_another_release_is_named(monkeypatch):
    host = Host([101], program=OLD + PYTHON)
    circus = host.patch(monkeypatch)
    result = rollout_module.rollout(params(numprocesses=1), circus)
    assert result["reason"] == f"process 201 runs {OLD}{PYTHON}, not the release {NEW}"


def test_a_process_still_in_circus_env_wrapper_is_waited_for(monkeypatch):
    host = Host([101], program="/bin/bash")

    def exec_release(h):
        h.procs[201] = (1, NEW + PYTHON)
        h.ready(201, 301)

    circus = host.patch(monkeypatch, at={1.0: exec_release})
    result = rollout_module.rollout(params(numprocesses=1, workers=1), circus)
    assert result["ready"] is True, result["reason"]


def test_a_failed_release_is_stopped_first_and_replaced_before_the_old_ones_go(monkeypatch):
    # After a failed rollout: 101, 102 of the old release serve; 201, 202 of the bad one are
    # still in the watcher (numprocesses 4), and `current` names the old release again.
    host = Host([101, 102, 201, 202], numprocesses=4, program=OLD + PYTHON)
    host.next_pid = 300

    def term(h):
        for pid in (201, 202):
            h.exit(pid)

    circus = host.patch(monkeypatch, at={0.2: term, 1.0: lambda h: h.ready(301, 401, 402),
                                         2.0: lambda h: h.ready(302, 403, 404)})
    result = rollout_module.rollout(params(release_dir=OLD, stop_first=[201, 202]), circus)
    assert result["ready"] is True, result["reason"]
    assert commands(host)[:2] == [("kill", 201, signal.SIGTERM), ("kill", 202, signal.SIGTERM)]
    # Still 4 processes in all: Circus replaces the two stopped ones at once, with `current`'s.
    assert commands(host)[2:] == [("set", "numprocesses", "4"), ("set", "numprocesses", "2")]
    assert (result["old"], result["new"], host.watcher) == ([101, 102], [301, 302], [301, 302])


def test_a_release_that_failed_its_check_after_the_switch_is_stopped_before_the_old_one_boots(monkeypatch):
    # After the check of a release that served alone (its rollout was ready, the old
    # processes gone): 201, 202 are all there is. They stop first; requests wait in the
    # socket's queue until `current`'s (the old release) are ready, rather than get errors.
    host = Host([201, 202], numprocesses=2, program=OLD + PYTHON)
    host.next_pid = 300

    def term(h):
        for pid in (201, 202):
            h.exit(pid)

    circus = host.patch(monkeypatch, at={0.2: term, 1.5: lambda h: (h.ready(301, 401, 402), h.ready(302, 403, 404))})
    result = rollout_module.rollout(params(release_dir=OLD, stop_first=[201, 202]), circus)
    assert result["ready"] is True, result["reason"]
    assert commands(host) == [("kill", 201, signal.SIGTERM), ("kill", 202, signal.SIGTERM),
                              ("set", "numprocesses", "2")]
    assert (result["old"], result["new"], host.watcher) == ([], [301, 302], [301, 302])


def test_markers_of_masters_that_no_longer_run_are_removed_after_a_rollout(monkeypatch):
    host = Host([101])
    host.markers = {"77.78", "101.102"}  # 77: a master killed outright; 101: the old one, stopping now
    circus = host.patch(monkeypatch, at={1.0: lambda h: h.ready(201, 301)})
    assert rollout_module.rollout(params(numprocesses=1, workers=1), circus)["ready"] is True
    assert host.removed == ["/run/webdeploy-ready/app/77.78"]


def test_a_stopped_watcher_is_started_and_waited_for(monkeypatch):
    host = Host([], numprocesses=2, status="stopped")
    circus = host.patch(monkeypatch, at={1.0: lambda h: (h.ready(201, 301, 302), h.ready(202, 303, 304))})
    result = rollout_module.rollout(params(), circus)
    assert result["ready"] is True
    assert commands(host) == [("start",)]
    assert (result["old"], result["new"]) == ([], [201, 202])


def test_a_process_of_the_old_release_that_circus_lost_makes_the_rollout_fail_once_it_is_waited_for(monkeypatch):
    # 150: a worker orphaned by an old master that died; Circus no longer knows it, and it
    # would go on answering on the shared socket with the old code.
    host = Host([101])
    host.procs[150] = (1, OLD + PYTHON)
    host.procs[160] = (1, "/usr/bin/python3")  # another program of the app's user: not a release
    circus = host.patch(monkeypatch, at={1.0: lambda h: h.ready(201, 301)})
    monkeypatch.setattr(rollout_module, "processes", lambda: sorted(host.procs))
    monkeypatch.setattr(rollout_module, "owner", lambda pid: 1001 if pid in host.procs else None)
    monkeypatch.setattr(rollout_module, "uid_of", lambda user: {"app": 1001}[user])
    result = rollout_module.rollout(params(numprocesses=1, workers=1, user="app", strays_timeout=5), circus)
    assert result["ready"] is False
    assert result["strays"] == [f"150 {OLD}{PYTHON}"]
    assert result["reason"] == (f"processes of another release still run 5 s after the reload"
                                f" (pid and program: 150 {OLD}{PYTHON})")
    assert 5 <= host.now < 5 + 2 * ONE_LOOK + 1


def test_a_stray_that_ends_within_the_wait_does_not_fail_the_rollout(monkeypatch):
    host = Host([101])
    host.procs[150] = (1, OLD + PYTHON)
    circus = host.patch(monkeypatch, at={1.0: lambda h: h.ready(201, 301), 3.0: lambda h: h.exit(150)})
    monkeypatch.setattr(rollout_module, "processes", lambda: sorted(host.procs))
    monkeypatch.setattr(rollout_module, "owner", lambda pid: 1001 if pid in host.procs else None)
    monkeypatch.setattr(rollout_module, "uid_of", lambda user: 1001)
    result = rollout_module.rollout(params(numprocesses=1, workers=1, user="app", strays_timeout=30), circus)
    assert (result["ready"], result["strays"]) == (True, [])
    assert host.now < 3 + 2 * ONE_LOOK


def test_a_surge_of_one_replaces_one_process_at_a_time_each_ready_before_an_old_one_stops(monkeypatch):
    host = Host([101, 102])
    circus = host.patch(monkeypatch, at={1.0: lambda h: h.ready(201, 301, 302), 3.0: lambda h: h.ready(202, 303, 304)})
    result = rollout_module.rollout(params(surge=1), circus)
    assert result["ready"] is True and result["reason"] == "" and result["surge"] == 1
    assert (result["old"], result["new"]) == ([101, 102], [201, 202])
    assert commands(host) == [("set", "numprocesses", "3"), ("set", "numprocesses", "2"),
                              ("set", "numprocesses", "3"), ("set", "numprocesses", "2")]
    first_stop, second_start = host.events[1][0], host.events[2][0]
    assert first_stop == pytest.approx(1.0, abs=ONE_LOOK), "101 stopped once 201 was ready, not before"
    assert second_start == first_stop, "the second step starts as soon as the first is done"
    assert host.events[3][0] == pytest.approx(3.0, abs=ONE_LOOK)
    assert host.watcher == [201, 202]


def test_a_failed_step_of_a_surge_leaves_the_old_processes_not_yet_stopped_serving(monkeypatch):
    host = Host([101, 102])
    circus = host.patch(monkeypatch, at={1.0: lambda h: h.ready(201, 301, 302), 2.0: lambda h: h.exit(202)})
    result = rollout_module.rollout(params(surge=1, timeout=5), circus)
    assert result["ready"] is False
    assert result["reason"] == "process 202 exited while it booted"
    assert 102 in host.watcher and 101 not in host.procs, "only the step that succeeded stopped an old process"
    assert result["new"] == [201], "the new processes, for the caller to stop on the way back"


@pytest.mark.parametrize("surge", [0, 2, 5])
def test_a_surge_of_zero_or_of_numprocesses_or_more_starts_them_all_at_once(monkeypatch, surge):
    host = Host([101, 102])
    circus = host.patch(monkeypatch, at={1.0: lambda h: (h.ready(201, 301, 302), h.ready(202, 303, 304))})
    result = rollout_module.rollout(params(surge=surge), circus)
    assert result["ready"] is True and result["surge"] == 0
    assert commands(host) == [("set", "numprocesses", "4"), ("set", "numprocesses", "2")]
