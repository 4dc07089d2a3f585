#!/usr/bin/python
"""Ansible module of the release role: prove a release on a canary, probe the app's socket, or stop a canary."""

import http.client
import json
import socket
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_hold import hold
from ansible.module_utils.release_output import last_lines
from ansible.module_utils.release_units import RUNNING, unit_state

DOCUMENTATION = r"""
module: release_canary
short_description: Prove a new release on its own private socket before it serves, or stop its canary
description:
  - The release role starts the new release's gunicorn as a transient systemd unit (the canary),
    exactly as Circus will run it but with one worker and a private Unix socket that nginx does not use.
  - C(state=probed) waits, at most O(timeout) seconds, until the canary answers its health path, then
    asks the health path (200 naming O(version)) and each smoke path (its expected status) with the
    headers nginx sends. Only "not answering yet" (no socket, nothing accepting, or a listen queue
    that is full, as on an overloaded host) is waited for; a wrong answer, or a canary that exited,
    ends the probe at once.
  - C(state=tested) does it all in one round trip. It starts the canary with O(command), a
    C(systemd-run) of unit O(unit), probes it as C(state=probed) does, and stops it whatever
    happened. The directory of O(output_file) is created first, root's, mode 0750.
  - C(state=absent) stops the canary's unit (all its processes) if it runs.
  - Without O(unit), the same probe asks the app's own socket after the switch (and before a deploy of
    the version that is already current); "not answering yet" is then waited for until O(timeout).
  - The module never fails on a bad canary; it returns C(passed) and C(reason) for the role's message.
options:
  state:
    description: tested, probed or absent.
    type: str
    choices: [tested, probed, absent]
    default: probed
  command:
    description: The command that starts the canary as the transient unit O(unit) (state=tested).
    type: list
    elements: str
  slow_hint:
    description: Appended, in parentheses, to the reason of a canary that did not answer in time
      (state=tested): why it may be slow, e.g. that it ran at a lowered priority.
    type: str
    default: ''
  hold:
    description: Fault tests only (release_fault_hold). C(canary) holds once the canary has started.
    type: str
    default: ''
  hold_dir:
    description: Where a hold writes its file.
    type: path
    default: /run/webdeploy-hold
  unit:
    description: The canary's systemd unit (required with state=absent; with state=probed, a canary whose
      unit has stopped is not waited for).
    type: str
  socket:
    description: The canary's Unix socket (state=probed).
    type: path
  host:
    description: Host header, the app's first server name (state=probed).
    type: str
  scheme:
    description: X-Forwarded-Proto nginx sends for the app (https when it has TLS).
    type: str
    default: http
  health_path:
    description: Health path; must answer 200 with JSON naming O(version).
    type: str
    default: /healthz
  version:
    description: The version being deployed.
    type: str
  smoke_paths:
    description: List of {path, status}, asked in order after the health path.
    type: list
    elements: dict
    default: []
  timeout:
    description: Seconds the whole probe may take.
    type: int
    default: 30
  output_file:
    description: File the canary's stdout and stderr go to (a twelve-factor app logs its errors on stdout,
      gunicorn its own on stderr); its last lines go into the reason.
    type: path
"""

RETURN = r"""
passed:
  description: Whether every check passed (state=tested or probed).
  type: bool
reason:
  description: Why the canary failed, one sentence with the path, the status, the start of the body and the
    last lines of the canary's output (stdout and stderr); empty when it passed.
  type: str
checked:
  description: The requests made, as "GET <path> <status>".
  type: list
seconds:
  description: How long the probe took.
  type: float
was:
  description: The unit's state before (state=absent).
  type: str
"""

# A canary that is still starting: its socket does not exist yet, or nothing accepts on it.
NOT_YET = (FileNotFoundError, ConnectionRefusedError)
# The socket's listen queue is full (EAGAIN on a Unix socket): its processes are busy, as on
# an overloaded host, not broken. Waited for too, up to the timeout, as a client would wait.
QUEUE_FULL = BlockingIOError


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (the canary's), like nginx's upstream."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def get(socket_path, path, headers, timeout):
    """(status, body text) of GET path on the socket; raises OSError when nothing answers."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def proxy_headers(host, scheme):
    """What nginx sends the app (roles/nginx: proxy_set_header), for a client on loopback."""
    return {"Host": host, "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
            "X-Forwarded-Proto": scheme, "X-Forwarded-Host": host}


def start_of(body):
    """The first 200 characters of a body, its whitespace squeezed (an HTML page reads on one line)."""
    return " ".join(body.split())[:200]


def health_version(body):
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("version") if isinstance(data, dict) else None


def probe(socket_path, host, scheme, health_path, version, smoke_paths, timeout, alive,
          clock=time.monotonic, sleep=time.sleep):
    """(passed, reason without the stderr lines, checked). `alive()` says whether the canary's
    processes still run; only a canary that is alive and not answering yet is waited for."""
    headers = proxy_headers(host, scheme)
    deadline = clock() + timeout
    checked = []
    wants = [(health_path, 200)] + [(p["path"], int(p["status"])) for p in smoke_paths]
    for index, (path, expected) in enumerate(wants):
        full = False
        while True:
            left = deadline - clock()
            if left <= 0:
                return False, late(path, timeout, full), checked
            try:
                status, body = get(socket_path, path, headers, left)
                break
            except socket.timeout:
                return False, late(path, timeout, full), checked
            except (OSError, http.client.HTTPException) as error:
                if not alive():
                    return False, f"it exited before it answered GET {path}", checked
                if not isinstance(error, NOT_YET + (QUEUE_FULL, http.client.RemoteDisconnected, ConnectionResetError)):
                    return False, f"GET {path} failed: {error}", checked
                full = isinstance(error, QUEUE_FULL)
                sleep(0.2)
        checked.append(f"GET {path} {status}")
        if index == 0:
            named = health_version(body)
            if status != 200 or named != version:
                other = f" naming version {named}" if named and named != version else ""
                return False, (f"GET {path} answered {status}{other}, expected 200 naming version {version}: "
                               f"{start_of(body)}"), checked
        elif status != expected:
            return False, f"GET {path} answered {status}, expected {expected}: {start_of(body)}", checked
    return True, "", checked


def late(path, timeout, full):
    """Why the probe gave up at its timeout; a full listen queue at the last attempt is said."""
    reason = f"it did not answer GET {path} within {timeout} s"
    return reason + (": its socket's listen queue was full (the host is overloaded)" if full else "")


def with_hint(reason, hint):
    """A timeout's reason with the hint (why a canary may be slow), other reasons as they are."""
    return f"{reason} ({hint})" if hint and reason.startswith("it did not answer") else reason


def said(output_file):
    """The canary's last lines of output, as a sentence to append to a reason."""
    lines = last_lines(output_file)
    return f". The canary's last lines of output: {lines}" if lines else ". The canary wrote nothing"


def tested(module, p):
    """state=tested: start the canary, probe it, stop it; (passed, reason, checked). The
    output is read before the stop, whose own lines would hide why the canary failed."""
    os.makedirs(os.path.dirname(p["output_file"]), mode=0o750, exist_ok=True)
    rc, out, err = module.run_command(p["command"])
    if rc != 0:
        return False, f"it did not start: {(err or out).strip()}", []
    try:
        hold("canary", p["hold"], p["hold_dir"])
        passed, reason, checked = probe(p["socket"], p["host"], p["scheme"], p["health_path"], p["version"],
                                        p["smoke_paths"], p["timeout"], lambda: unit_state(p["unit"]) in RUNNING)
        return passed, reason if passed else with_hint(reason, p.get("slow_hint")) + said(p["output_file"]), checked
    finally:
        # KillMode=control-group: stopping the unit ends every process of the canary.
        if unit_state(p["unit"]) in RUNNING:
            module.run_command(["systemctl", "stop", p["unit"]], check_rc=True)


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["tested", "probed", "absent"], "default": "probed"},
            "command": {"type": "list", "elements": "str"},
            "unit": {"type": "str"},
            "socket": {"type": "path"},
            "host": {"type": "str"},
            "scheme": {"type": "str", "default": "http"},
            "health_path": {"type": "str", "default": "/healthz"},
            "version": {"type": "str"},
            "smoke_paths": {"type": "list", "elements": "dict", "default": []},
            "timeout": {"type": "int", "default": 30},
            "output_file": {"type": "path"},
            "slow_hint": {"type": "str", "default": ""},
            "hold": {"type": "str", "default": ""},
            "hold_dir": {"type": "path", "default": "/run/webdeploy-hold"},
        },
        required_if=[("state", "probed", ("socket", "host", "version")), ("state", "absent", ("unit",)),
                     ("state", "tested", ("command", "unit", "socket", "host", "version", "output_file"))],
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "absent":
        was = unit_state(p["unit"])
        if was in RUNNING and not module.check_mode:
            module.run_command(["systemctl", "stop", p["unit"]], check_rc=True)
        module.exit_json(changed=was in RUNNING, was=was)

    started = time.monotonic()
    if p["state"] == "tested":
        if module.check_mode:
            module.exit_json(changed=False, passed=False, reason="check mode: nothing done", checked=[], seconds=0.0)
        passed, reason, checked = tested(module, p)
    else:
        running = (lambda: unit_state(p["unit"]) in RUNNING) if p["unit"] else (lambda: True)
        passed, reason, checked = probe(p["socket"], p["host"], p["scheme"], p["health_path"], p["version"],
                                        p["smoke_paths"], p["timeout"], running)
    if not passed and p["output_file"] and p["state"] == "probed":
        reason += said(p["output_file"])
    module.exit_json(changed=p["state"] == "tested", passed=passed, reason=reason, checked=checked,
                     seconds=round(time.monotonic() - started, 2))


if __name__ == "__main__":
    main()
