"""The release role's canary probe (roles/release/library/release_canary.py), against a
small HTTP server on a Unix socket in this process: what passes, what fails at once,
what is waited for, and the sentence an operator reads."""

import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from release_modules import load

canary = load("release_canary")

SMOKE = [{"path": "/", "status": 200}]


class FakeClock:
    """time.monotonic and time.sleep that only move when slept: no test waits for real."""

    def __init__(self):
        self.now, self.slept = 0.0, 0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.slept += 1


def app(routes, seen):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append((self.path, dict(self.headers)))
            status, body = routes[self.path]
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture(name="serve")
def fixture_serve(tmp_path):
    servers = []

    def serve(routes):
        seen = []
        path = str(tmp_path / "canary.sock")
        server = socketserver.UnixStreamServer(path, app(routes, seen))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return path, seen

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def run(path, clock=None, alive=lambda: True, smoke=SMOKE, timeout=30):
    clock = clock or FakeClock()
    return canary.probe(path, "webxample.test", "https", "/healthz", "1.3.0", smoke, timeout, alive,
                        clock=clock.clock, sleep=clock.sleep)


def healthy(version="1.3.0"):
    return 200, json.dumps({"version": version, "database": "ok"})


def test_a_healthy_canary_passes_and_is_asked_like_nginx_asks(serve):
    path, seen = serve({"/healthz": healthy(), "/": (200, "<h1>webxample</h1>")})
    assert run(path) == (True, "", ["GET /healthz 200", "GET / 200"])
    assert [p for p, _ in seen] == ["/healthz", "/"]
    headers = seen[1][1]
    assert (headers["Host"], headers["X-Forwarded-Proto"], headers["X-Forwarded-For"]) == ("webxample.test", "https",
                                                                                            "127.0.0.1")


def test_an_unhealthy_canary_fails_at_once_with_the_status_and_the_body(serve):
    body = json.dumps({"version": "1.3.0", "database": "error", "error": "OperationalError: no such column"})
    path, seen = serve({"/healthz": (503, body), "/": (200, "")})
    clock = FakeClock()
    assert run(path, clock) == (False, f"GET /healthz answered 503, expected 200 naming version 1.3.0: {body}",
                                ["GET /healthz 503"])
    assert clock.slept == 0 and [p for p, _ in seen] == ["/healthz"]


def test_a_canary_of_another_version_fails(serve):
    path, _ = serve({"/healthz": healthy("1.1.0"), "/": (200, "")})
    passed, reason, _ = run(path)
    assert not passed
    assert reason.startswith("GET /healthz answered 200 naming version 1.1.0, expected 200 naming version 1.3.0: ")


def test_a_smoke_path_with_another_status_fails_with_the_start_of_its_body(serve):
    page = "<html>\n  <title>Server Error (500)</title>\n" + "x" * 400
    path, _ = serve({"/healthz": healthy(), "/": (500, page), "/about": (200, "")})
    passed, reason, checked = run(path, smoke=SMOKE + [{"path": "/about", "status": 200}])
    assert not passed
    assert reason == "GET / answered 500, expected 200: " + " ".join(page.split())[:200]
    assert checked == ["GET /healthz 200", "GET / 500"]  # and not /about


def test_a_smoke_path_may_expect_another_status(serve):
    path, _ = serve({"/healthz": healthy(), "/admin/": (302, "")})
    assert run(path, smoke=[{"path": "/admin/", "status": 302}])[0] is True


def test_a_canary_still_starting_is_waited_for(tmp_path, serve):
    # No socket yet: the first attempts find nothing; the server comes up meanwhile.
    clock = FakeClock()

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.slept == 3:
            serve({"/healthz": healthy(), "/": (200, "")})

    result = canary.probe(str(tmp_path / "canary.sock"), "webxample.test", "http", "/healthz", "1.3.0", SMOKE, 30,
                          lambda: True, clock=clock.clock, sleep=sleep)
    assert result == (True, "", ["GET /healthz 200", "GET / 200"])
    assert clock.slept == 3


def test_a_canary_that_never_answers_fails_after_the_timeout(tmp_path):
    clock = FakeClock()
    passed, reason, _ = run(str(tmp_path / "never.sock"), clock, timeout=5)
    assert (passed, reason) == (False, "it did not answer GET /healthz within 5 s")
    assert clock.now >= 5


def full_listener(path):
    """A Unix socket that accepts nothing, its listen queue filled: a connect gets EAGAIN, as
    on the app's socket when every process is busy. (listener, the connections queued)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    queued = []
    while True:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(0.1)
        try:
            client.connect(path)
        except BlockingIOError:
            client.close()
            return listener, queued
        queued.append(client)
        assert len(queued) < 100, "the listen queue never filled"


def test_a_full_listen_queue_is_waited_for_and_said_at_the_timeout(tmp_path):
    # Overload is not a broken release: the probe waits (the old processes' answers are
    # slow, not wrong), and names it if the queue is still full at the end.
    listener, queued = full_listener(str(tmp_path / "busy.sock"))
    clock = FakeClock()
    passed, reason, _ = run(str(tmp_path / "busy.sock"), clock, timeout=5)
    assert (passed, reason) == (False, "it did not answer GET /healthz within 5 s: its socket's listen queue was"
                                       " full (the host is overloaded)")
    assert clock.slept >= 20
    for s in queued + [listener]:
        s.close()


def test_a_listen_queue_that_drains_in_time_passes(tmp_path):
    path = str(tmp_path / "busy.sock")
    listener, queued = full_listener(path)
    clock = FakeClock()

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.slept == 3:  # the app catches up: its queue drains and it answers
            for s in queued:  # accepted here, at once: the queue is empty before the next attempt
                listener.accept()[0].close()
                s.close()
            server = socketserver.ThreadingUnixStreamServer(path, app({"/healthz": healthy(), "/": (200, "")}, []),
                                                            bind_and_activate=False)
            server.handle_error = lambda *args: None  # the closed connections of the full queue
            server.socket.close()
            server.socket = listener
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    result = canary.probe(path, "webxample.test", "http", "/healthz", "1.3.0", SMOKE, 30, lambda: True,
                          clock=clock.clock, sleep=sleep)
    assert result == (True, "", ["GET /healthz 200", "GET / 200"])
    assert clock.slept == 3


def test_a_timeout_names_why_the_canary_may_be_slow_and_other_reasons_do_not():
    hint = "it ran at nice 19, CPUWeight 10 (release_work_*): on a busy host it boots on idle CPU only"
    assert canary.with_hint("it did not answer GET /healthz within 30 s", hint) == (
        "it did not answer GET /healthz within 30 s (it ran at nice 19, CPUWeight 10 (release_work_*): on a busy"
        " host it boots on idle CPU only)")
    assert canary.with_hint("it exited before it answered GET /healthz", hint) == (
        "it exited before it answered GET /healthz")
    assert canary.with_hint("it did not answer GET / within 30 s", "") == "it did not answer GET / within 30 s"


def test_a_canary_that_exited_fails_at_once(tmp_path):
    clock = FakeClock()
    assert run(str(tmp_path / "gone.sock"), clock, alive=lambda: False) == (
        False, "it exited before it answered GET /healthz", [])
    assert clock.slept == 0


def test_the_last_lines_of_output(tmp_path):
    log = tmp_path / "canary.log"
    log.write_text("[INFO] Starting gunicorn\n\nTraceback (most recent call last):\n  File x\n"
                   "ModuleNotFoundError: No module named 'feature_flags'\n[ERROR] Worker failed to boot.\n")
    assert canary.last_lines(log, 3) == ("File x / ModuleNotFoundError: No module named 'feature_flags' / "
                                         "[ERROR] Worker failed to boot.")
    assert canary.last_lines(tmp_path / "missing.log") == ""


class FakeModule:
    """What tested() asks of AnsibleModule: run_command, recorded; `fails` makes the start fail."""

    def __init__(self, fails=False):
        self.ran, self.fails = [], fails

    def run_command(self, argv, check_rc=False):
        self.ran.append(argv)
        if self.fails and argv[0] == "systemd-run":
            return 1, "", "Failed to start transient service unit: Unit webdeploy-canary-app.service already exists.\n"
        return 0, "", ""


def params_of_tested(tmp_path, socket_path, **extra):
    return {"command": ["systemd-run", "--unit=webdeploy-canary-app.service", "--", "gunicorn"],
            "unit": "webdeploy-canary-app.service", "socket": socket_path, "host": "webxample.test",
            "scheme": "http", "health_path": "/healthz", "version": "1.3.0", "smoke_paths": SMOKE, "timeout": 30,
            "output_file": str(tmp_path / "out" / "app.log"), "hold": "", "hold_dir": str(tmp_path / "hold"), **extra}


def test_tested_starts_the_canary_proves_it_and_stops_it(tmp_path, serve, monkeypatch):
    path, seen = serve({"/healthz": healthy(), "/": (200, "<html>")})
    states = iter(["active", "active"])  # running while asked, still running when stopped
    monkeypatch.setattr(canary, "unit_state", lambda unit: next(states, "inactive"))
    module = FakeModule()
    passed, reason, checked = canary.tested(module, params_of_tested(tmp_path, path))
    assert (passed, reason, checked) == (True, "", ["GET /healthz 200", "GET / 200"])
    assert module.ran == [params_of_tested(tmp_path, path)["command"], ["systemctl", "stop", "webdeploy-canary-app.service"]]
    assert oct((tmp_path / "out").stat().st_mode & 0o777) == "0o750"


def test_tested_stops_the_canary_when_it_fails_too(tmp_path, serve, monkeypatch):
    path, _ = serve({"/healthz": (503, "down")})
    monkeypatch.setattr(canary, "unit_state", lambda unit: "active")
    module = FakeModule()
    passed, reason, _ = canary.tested(module, params_of_tested(tmp_path, path))
    assert passed is False and reason.startswith("GET /healthz answered 503, expected 200 naming version 1.3.0")
    assert module.ran[-1] == ["systemctl", "stop", "webdeploy-canary-app.service"]


def test_tested_reads_the_output_before_the_stop_hides_it(tmp_path, serve, monkeypatch):
    path, _ = serve({"/healthz": healthy(), "/": (500, "Server Error")})
    out = tmp_path / "out" / "app.log"

    class Stopping(FakeModule):
        def run_command(self, argv, check_rc=False):
            if argv[0] == "systemctl":  # gunicorn's own lines on the way down
                out.write_text(out.read_text() + "".join(f"[INFO] shutting down {i}\n" for i in range(6)))
            elif argv[0] == "systemd-run":
                out.parent.mkdir(exist_ok=True)
                out.write_text("NoReverseMatch: Reverse for 'about' not found.\n")
            return super().run_command(argv, check_rc)

    monkeypatch.setattr(canary, "unit_state", lambda unit: "active")
    passed, reason, _ = canary.tested(Stopping(), params_of_tested(tmp_path, path))
    assert passed is False
    assert reason == ("GET / answered 500, expected 200: Server Error. The canary's last lines of output: "
                      "NoReverseMatch: Reverse for 'about' not found.")


def test_a_canary_that_cannot_start_fails_with_what_systemd_said(tmp_path, monkeypatch):
    monkeypatch.setattr(canary, "unit_state", lambda unit: "inactive")
    module = FakeModule(fails=True)
    passed, reason, checked = canary.tested(module, params_of_tested(tmp_path, str(tmp_path / "none.sock")))
    assert (passed, checked) == (False, [])
    assert reason == ("it did not start: Failed to start transient service unit: "
                      "Unit webdeploy-canary-app.service already exists.")
    assert len(module.ran) == 1  # nothing asked, nothing to stop


def test_a_hold_at_canary_comes_after_the_start_and_before_any_question(tmp_path, serve, monkeypatch):
    import threading
    import time

    path, seen = serve({"/healthz": healthy(), "/": (200, "<html>")})
    monkeypatch.setattr(canary, "unit_state", lambda unit: "active")
    module, done = FakeModule(), []
    run = threading.Thread(target=lambda: done.append(canary.tested(module, params_of_tested(tmp_path, path, hold="canary"))))
    run.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "hold" / "canary").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert module.ran == [params_of_tested(tmp_path, path)["command"]] and seen == []  # started, not asked
    (tmp_path / "hold" / "canary").unlink()
    run.join(10)
    assert done[0][0] is True
