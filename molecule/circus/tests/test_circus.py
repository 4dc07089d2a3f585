"""Behaviour of the `circus` role on a converged host (see ../converge.yml, ../inventory/group_vars/all/scenario.yml).

Watchers: alpha (a log writer with an env file), beta (the same program, 2 processes,
copy_env on), web (a server on a Circus-owned unix socket) and activated (the same
server, given its socket the systemd way).
"""

import base64
import copy
import re
import time
from pathlib import Path

import pytest
import testinfra
import yaml
from sandbox_support import apply_role, assert_check_mode_clean, check_once

SCENARIO_DIR = Path(__file__).resolve().parent.parent
SCENARIO = yaml.safe_load((SCENARIO_DIR / "inventory/group_vars/all/scenario.yml").read_text(encoding="utf-8"))
HOSTS = sorted(yaml.safe_load((SCENARIO_DIR / "inventory/hosts.yml").read_text(encoding="utf-8"))["all"]["hosts"])
CIRCUSCTL = "/usr/local/sbin/circusctl"
CONTROL_SOCKET = "/run/circus/control/circusd.sock"
WEB_SOCKET = "/run/circus/sockets/web.sock"
ALPHA_ENV = SCENARIO["scenario_published_watchers"][0]["env"]
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A client for the web watcher's socket: prints the server's answer ("pid=<pid>").
CONNECT = ("python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(60); "
           "s.connect(sys.argv[1]); print(s.recv(100).decode().strip())' " + WEB_SOCKET)


def wait_for(probe, what, timeout=60):
    """Poll `probe` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def main_pid(host):
    return int(host.check_output("systemctl show -p MainPID --value circus"))


def pids(host, watcher):
    """PIDs of a watcher's processes, from Circus."""
    result = host.run(f"{CIRCUSCTL} list {watcher}")
    assert result.rc == 0, result.stdout + result.stderr
    return sorted(int(p) for p in re.findall(r"\d+", result.stdout))


def alive(host, pid):
    return host.run(f"test -d /proc/{pid}").rc == 0


def watcher_env(host, watcher, pid):
    """The environment of a process, read as the watcher's own user (root inside the
    container lacks CAP_SYS_PTRACE, which reading another user's environ needs)."""
    raw = host.check_output(f"runuser -u {watcher} -- cat /proc/{pid}/environ | base64 -w0")
    entries = base64.b64decode(raw).decode().split("\0")
    return dict(e.split("=", 1) for e in entries if e)


def state(host):
    """PIDs of circusd and of every watcher."""
    return {"circusd": main_pid(host), **{w: pids(host, w) for w in ("alpha", "beta", "web")}}


def scenario_vars(published=None, watchers=None):
    return {"circus_dependent_watchers": published if published is not None
            else copy.deepcopy(SCENARIO["scenario_published_watchers"]),
            "circus_watchers": watchers if watchers is not None else copy.deepcopy(SCENARIO["scenario_watchers"]),
            "circus_stop_timeout": SCENARIO["scenario_stop_timeout"]}


def apply(host, scenario_dir, role_vars, *args):
    return apply_role(scenario_dir, "circus", role_vars, "--limit", host.backend.host, *args)


def every_host():
    """testinfra hosts for every host of the scenario, for changes applied to all at once."""
    return [testinfra.get_host(f"ansible://{name}", ansible_inventory=str(SCENARIO_DIR / "inventory"))
            for name in HOSTS]


def restore(hosts, scenario_dir):
    """Back to the converged state (converge.yml's input), on every host at once."""
    result = apply_role(scenario_dir, "circus", scenario_vars())
    assert result.returncode == 0, result.stdout[-3000:]
    for host in hosts:
        wait_for(lambda host=host: all(pids(host, w) for w in ("alpha", "beta", "web")), "every watcher to run again")


def eventually(probe, timeout=60):
    """Poll `probe` until it returns something true; that value, or False after `timeout` seconds."""
    try:
        return wait_for(probe, "", timeout)
    except AssertionError:
        return False


def test_circusd_runs_under_systemd_as_root(host):
    service = host.service("circus")
    assert service.is_running
    assert service.is_enabled
    circusd = host.process.get(pid=main_pid(host))
    assert circusd.user == "root"
    assert "/opt/circus/bin/circusd" in circusd.args


def test_systemd_restarts_circusd_when_it_is_killed(host):
    before = state(host)
    # every watcher runs before: the check below that none of them outlived circusd
    # would otherwise pass on nothing
    assert before["alpha"] and before["beta"] and before["web"], before
    host.check_output(f"kill -9 {before['circusd']}")
    wait_for(lambda: host.run("systemctl is-active circus").stdout.strip() == "active"
             and main_pid(host) not in (0, before["circusd"]), "systemd to start circusd again",
             timeout=SCENARIO["scenario_stop_timeout"] + 90)
    wait_for(lambda: all(pids(host, w) for w in ("alpha", "beta", "web")), "the watchers to run again")
    # the old processes went with the old circusd: no orphan holds a socket or a log
    for pid in before["alpha"] + before["beta"] + before["web"]:
        assert not alive(host, pid), pid


def test_watcher_runs_as_its_user_with_the_env_file_and_without_root_env(host):
    pid = pids(host, "alpha")[0]
    status = host.file(f"/proc/{pid}/status").content_string
    uid = host.user("alpha").uid
    gid = host.group("alpha").gid
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
    assert re.search(rf"^Gid:\s+{gid}\s+{gid}\s+{gid}\s+{gid}$", status, re.M), status
    env = watcher_env(host, "alpha", pid)
    # values arrive exactly as written: spaces, quotes, " ;" and "$E..." untouched
    assert env["GREETING"] == ALPHA_ENV["GREETING"]
    assert env["SECRET_TOKEN"] == ALPHA_ENV["SECRET_TOKEN"]
    assert env["PATH"] == BASE_PATH
    # copy_env off: only the file's variables (and the shell's PWD), nothing of circusd's
    assert set(env) == {"GREETING", "SECRET_TOKEN", "PATH", "LANG", "PWD"}, sorted(env)
    # beta has copy_env on: circusd's environment (set by systemd) does reach it
    beta = watcher_env(host, "beta", pids(host, "beta")[0])
    assert "INVOCATION_ID" in beta and beta["GREETING"] == "hi from beta"


def test_env_file_is_readable_by_root_and_the_app_group_only(host):
    env_file = host.file("/etc/circus/env/alpha.env")
    assert env_file.user == "root"
    assert env_file.group == "alpha"
    assert env_file.mode == 0o640
    assert host.run("runuser -u alpha -- cat /etc/circus/env/alpha.env").rc == 0
    for other in ("beta", "nobody", "www-data"):
        assert host.run(f"runuser -u {other} -- cat /etc/circus/env/alpha.env").rc != 0, other


def test_stdout_and_stderr_land_in_the_log_files(host):
    pid = pids(host, "alpha")[0]
    line = f"pid={pid} "
    wait_for(lambda: line in host.file("/var/log/alpha/stdout.log").content_string, "alpha's output in its log")
    last = [entry for entry in host.file("/var/log/alpha/stdout.log").content_string.splitlines() if line in entry][-1]
    assert f"GREETING={ALPHA_ENV['GREETING']!r}" in last
    assert f"started pid={pid}" in host.file("/var/log/alpha/stderr.log").content_string
    size = host.file("/var/log/alpha/stdout.log").size
    wait_for(lambda: host.file("/var/log/alpha/stdout.log").size > size, "the log to grow")
    log_dir = host.file("/var/log/alpha")
    assert (log_dir.user, log_dir.group, log_dir.mode) == ("root", "adm", 0o750)


def test_a_killed_process_is_replaced(host):
    old = pids(host, "alpha")[0]
    host.check_output(f"kill -9 {old}")
    new = wait_for(lambda: [p for p in pids(host, "alpha") if p != old and alive(host, p)], "a new alpha process")
    assert host.process.get(pid=new[0]).user == "alpha"


def test_only_root_can_use_the_control_socket(host):
    status = host.run(f"{CIRCUSCTL} status")
    assert status.rc == 0 and "alpha: active" in status.stdout, status.stdout + status.stderr
    for user in ("nobody", "www-data", "alpha"):
        ctl = host.run(f"runuser -u {user} -- /opt/circus/bin/circusctl --endpoint ipc://{CONTROL_SOCKET} "
                       "--timeout 3 status")
        assert ctl.rc != 0 and "active" not in ctl.stdout, (user, ctl.stdout)
        raw = host.run(f"runuser -u {user} -- python3 -c 'import socket; "
                       f"socket.socket(socket.AF_UNIX).connect(\"{CONTROL_SOCKET}\")'")
        assert "PermissionError" in raw.stderr, (user, raw.stderr)


def test_nothing_of_circus_listens_on_tcp_or_udp(host):
    circus = {main_pid(host)} | {p for w in ("alpha", "beta", "web") for p in pids(host, w)}
    listeners = host.check_output("ss -lntupH")
    owners = {int(p) for p in re.findall(r"pid=(\d+)", listeners)}
    assert not owners & circus, listeners
    # Circus' defaults: control 5555, pubsub 5556, stats 5557, multicast UDP 12027
    for port in (5555, 5556, 5557, 12027):
        assert not re.search(rf":{port}\s", listeners), listeners
    # its endpoints are ipc:// sockets instead
    unix = host.check_output("ss -xlpH")
    assert re.search(rf"{re.escape(CONTROL_SOCKET)} .*\"circusd\",pid={main_pid(host)},", unix), unix


def test_circus_owned_socket_is_held_by_circusd_and_survives_a_restart_of_the_process(host):
    circusd = main_pid(host)
    listening = host.check_output(f"ss -xlpH src {WEB_SOCKET}")
    assert f'"circusd",pid={circusd},' in listening, listening
    inode = listening.split()[5]
    old = pids(host, "web")[0]
    assert host.check_output(f"runuser -u www-data -- {CONNECT}") == f"pid={old}"
    # Kill the process and connect at once: the socket keeps accepting (the connection
    # waits in its backlog) and the new process answers it.
    answer = host.check_output(f"kill -9 {old}; runuser -u www-data -- {CONNECT}")
    new = pids(host, "web")[0]
    assert new != old and answer == f"pid={new}"
    after = host.check_output(f"ss -xlpH src {WEB_SOCKET}")
    assert after.split()[5] == inode and f'"circusd",pid={circusd},' in after, (listening, after)
    # only root and circus_socket_group (www-data) may connect
    denied = host.run(f"runuser -u nobody -- {CONNECT}")
    assert denied.rc != 0 and "PermissionError" in denied.stderr, denied.stderr


def test_a_socket_handed_over_the_systemd_way_arrives_as_fd_3(host):
    # The server finds its socket only through LISTEN_FDS/LISTEN_PID (it exits otherwise).
    pid = pids(host, "activated")[0]
    env = watcher_env(host, "web", pid)
    assert env["LISTEN_FDS"] == "1" and env["LISTEN_PID"] == str(pid), env
    connect = CONNECT.replace(WEB_SOCKET, "/run/circus/sockets/activated.sock")
    assert host.check_output(f"runuser -u www-data -- {connect}") == f"pid={pid}"


# The next two tests change the watchers on every host in one run of the role (one
# ansible-playbook for both hosts instead of one each), record what each host shows, and
# put the converged state back before any other test runs; each host's test then checks
# its own record.

@pytest.fixture(name="changed_watchers", scope="module")
def fixture_changed_watchers(scenario_dir):
    """alpha's env changed and beta scaled from 2 to 3 processes, on every host."""
    hosts = every_host()
    before = {h.backend.host: state(h) for h in hosts}
    published = copy.deepcopy(SCENARIO["scenario_published_watchers"])
    new_secret = "n3w-Secret-%d" % time.time_ns()
    published[0]["env"] = dict(published[0]["env"], GREETING="changed", SECRET_TOKEN=new_secret)
    watchers = copy.deepcopy(SCENARIO["scenario_watchers"])
    watchers[0]["numprocesses"] = 3  # beta: 2 -> 3, applied without restarting its processes
    try:
        result = apply_role(scenario_dir, "circus", scenario_vars(published, watchers), "--diff")
        seen = {}
        if result.returncode == 0:
            for h in hosts:
                after = state(h)
                env = watcher_env(h, "alpha", after["alpha"][0]) if after["alpha"] else {}
                seen[h.backend.host] = {"before": before[h.backend.host], "after": after, "env": env}
    finally:
        restore(hosts, scenario_dir)
    return {"result": result, "new_secret": new_secret, "hosts": seen}


def test_changing_one_watcher_restarts_only_that_watcher(host, changed_watchers):
    result, new_secret = changed_watchers["result"], changed_watchers["new_secret"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert new_secret not in result.stdout, "a secret env value was printed"
    seen = changed_watchers["hosts"][host.backend.host]
    before, after, env = seen["before"], seen["after"], seen["env"]
    # the comparisons below pass on nothing for a watcher that ran no process before
    assert before["alpha"] and len(before["beta"]) == 2 and before["web"], before
    assert after["circusd"] == before["circusd"]
    assert after["web"] == before["web"]
    assert set(before["beta"]) < set(after["beta"]) and len(after["beta"]) == 3
    assert after["alpha"] and not set(after["alpha"]) & set(before["alpha"])
    assert (env["GREETING"], env["SECRET_TOKEN"]) == ("changed", new_secret)


@pytest.fixture(name="removed_watcher", scope="module")
def fixture_removed_watcher(scenario_dir):
    """beta marked absent, on every host."""
    hosts = every_host()
    before = {h.backend.host: state(h) for h in hosts}
    watchers = copy.deepcopy(SCENARIO["scenario_watchers"])
    watchers[0] = {"name": "beta", "state": "absent"}
    try:
        result = apply_role(scenario_dir, "circus", scenario_vars(watchers=watchers))
        seen = {}
        if result.returncode == 0:
            for h in hosts:
                old_beta = before[h.backend.host]["beta"]
                seen[h.backend.host] = {
                    "before": before[h.backend.host],
                    "status": h.check_output(f"{CIRCUSCTL} status"),
                    "stopped": eventually(lambda h=h, old_beta=old_beta: not any(alive(h, p) for p in old_beta)),
                    "files": [h.file(f).exists for f in ("/etc/circus/watchers.d/beta.ini", "/etc/circus/env/beta.env")],
                    "circusd": main_pid(h),
                    "alpha": pids(h, "alpha"),
                    "web": pids(h, "web"),
                }
    finally:
        restore(hosts, scenario_dir)
    return {"result": result, "hosts": seen}


def test_removing_a_watcher_stops_it_and_nothing_else(host, removed_watcher):
    result = removed_watcher["result"]
    assert result.returncode == 0, result.stdout[-3000:]
    seen = removed_watcher["hosts"][host.backend.host]
    before = seen["before"]
    # "stopped" (no old beta process alive) and the comparisons below pass on nothing
    # for a watcher that ran no process before
    assert before["alpha"] and before["beta"] and before["web"], before
    assert "beta" not in seen["status"]
    assert seen["stopped"], "beta's processes did not stop"
    assert seen["files"] == [False, False], "beta's include or env file is still there"
    assert seen["circusd"] == before["circusd"]
    assert seen["alpha"] == before["alpha"]
    assert seen["web"] == before["web"]


# Bad input: the play fails with a clear message and the host is left exactly as it was.
# "gamma" is a valid new watcher listed beside the bad entry: it must not appear (its
# graceful_timeout is below the scenario's circus_stop_timeout - 5, as the role requires).
# Each message is the whole sentence the role (or Ansible's argument-spec check) prints
# for that input, compared with runs of whitespace made single spaces; "{host}" is the
# host's name. The role's sentences list every error found, so each one here also says
# that the bad entry is the only error. A run that fails for any other reason does not
# print it.
GAMMA = {"name": "gamma", "command": "/usr/local/bin/circus-test-writer", "uid": "alpha", "graceful_timeout": 5}


def invalid(error):
    return f"Invalid circus watcher input: {error}. Nothing was changed."


BAD_INPUTS = {
    "unknown user": ([GAMMA, dict(GAMMA, name="delta", uid="nosuchuser")],
                     "On {host}: watcher delta: user nosuchuser does not exist. Create them first (role users), "
                     "or mark the watcher absent. Nothing was changed."),
    "relative command": ([GAMMA, dict(GAMMA, name="delta", command="circus-test-writer")],
                         invalid("watcher delta: command must be an absolute path")),
    "invalid name": ([GAMMA, dict(GAMMA, name="Bad Name")],
                     invalid('watcher "Bad Name": a name is 1 to 48 lower-case letters, digits, _ or -, '
                             "starting with a letter")),
    "running as root": ([GAMMA, dict(GAMMA, name="delta", uid="root")],
                        invalid("watcher delta: refusing to run as root; give the app its own user")),
    "multi-line env value": ([GAMMA, dict(GAMMA, name="delta", env={"TOKEN": "a\nb"})],
                             invalid("watcher delta: the value of env TOKEN must be one line of text "
                                     "(quote numbers and booleans)")),
    "graceful_timeout too long": ([GAMMA, dict(GAMMA, name="delta", graceful_timeout=600)],
                                  invalid("watcher delta: graceful_timeout must be a number of seconds below "
                                          f"circus_stop_timeout - 5 ({SCENARIO['scenario_stop_timeout']} - 5)")),
    "tcp socket without a port": ([GAMMA, dict(GAMMA, name="delta", socket={"type": "tcp"})],
                                  invalid("watcher delta: a tcp socket needs a port (1-65535) and a host address")),
    "duplicate name": ([GAMMA, GAMMA], "Watchers listed more than once in circus_watchers or "
                                       "circus_dependent_watchers: gamma. Nothing was changed."),
    "unknown socket handover": ([GAMMA, dict(GAMMA, name="delta", socket={"type": "unix", "handover": "env"})],
                                "value of handover must be one of: fd, systemd, got: env found in "
                                "circus_watchers -> socket"),
    "list given as a string": ("gamma", "Elements value for option 'circus_watchers' is of type str and we were "
                                        "unable to convert to dict: dictionary requested, could not parse JSON "
                                        "or key=value"),
}
SNAPSHOT = ("sha256sum /etc/circus/circus.ini /etc/circus/watchers.d/* /etc/circus/env/* "
            "/etc/systemd/system/circus.service; ls /var/log; systemctl show -p MainPID circus; "
            f"{CIRCUSCTL} status; for w in alpha beta web; do {CIRCUSCTL} list $w; done")


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_clearly_and_changes_nothing(host, scenario_dir, case):
    check_once(host)
    watchers, message = BAD_INPUTS[case]
    before = host.check_output(SNAPSHOT)
    result = apply(host, scenario_dir, dict(scenario_vars(), circus_watchers=copy.deepcopy(watchers)))
    assert result.returncode != 0, result.stdout[-3000:]
    assert message.format(host=host.backend.host) in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert host.check_output(SNAPSHOT) == before
    assert "gamma" not in host.check_output(f"{CIRCUSCTL} status")


def test_check_mode_reports_no_change(scenario_dir):
    assert_check_mode_clean(scenario_dir)
