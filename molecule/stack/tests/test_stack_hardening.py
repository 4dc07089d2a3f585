"""Hardening of the provisioned web hosts, after test_stack_faults.py: what an app's user
may touch, where secrets go, what listens. Each check tries the thing it forbids."""

from collections import Counter

import pytest
from sandbox_support import PROJECT, run_playbook
from stack_support import WEB, deploy

APPS = ("webxample", "shop")


def raw_headers(host, server_name, path):
    """(status, [(name, value), ...]) of a GET through nginx, every header line as it came:
    curl -D prints the header block verbatim, repeated headers included."""
    out = host.check_output(f"curl -sS -o /dev/null -D - -H 'Host: {server_name}' http://127.0.0.1{path}")
    status_line, *lines = out.splitlines()
    return int(status_line.split()[1]), [(n.strip().lower(), v.strip()) for n, _, v in
                                         (line.partition(":") for line in lines if line.strip())]


# One owner per header and response (roles/nginx/README.md): Django sends its own on the
# pages it answers (X-Frame-Options DENY, Referrer-Policy same-origin), nginx adds its
# defaults only where no app answered (static files, its own error pages).
SECURITY_HEADERS = ("x-content-type-options", "referrer-policy", "x-frame-options")
APP_VALUES = ("nosniff", "same-origin", "DENY")
NGINX_VALUES = ("nosniff", "strict-origin-when-cross-origin", "SAMEORIGIN")
RESPONSES = {
    "the app's page": ("webxample.test", "/", 200, APP_VALUES),
    "the app's 404": ("webxample.test", "/no-such-page/", 404, APP_VALUES),
    "a static file": ("webxample.test", "/static/webxample/style.css", 200, NGINX_VALUES),
    "nginx's 404 for a missing static file": ("webxample.test", "/static/no-such-file.css", 404, NGINX_VALUES),
    "nginx's own 502 (no app behind the vhost)": ("gone.test", "/", 502, NGINX_VALUES),
}


@pytest.mark.parametrize("response", RESPONSES)
def test_each_security_header_comes_exactly_once(web, response):
    server_name, path, status, values = RESPONSES[response]
    for name, host in web.items():
        got, headers = raw_headers(host, server_name, path)
        assert got == status, (name, headers)
        counts = Counter(n for n, _ in headers)
        assert {h: counts[h] for h in SECURITY_HEADERS} == dict.fromkeys(SECURITY_HEADERS, 1), (name, headers)
        assert tuple(dict(headers)[h] for h in SECURITY_HEADERS) == values, (name, headers)


@pytest.mark.parametrize("app", APPS)
def test_an_app_cannot_change_its_code_config_or_environment(web, app):
    current = f"/srv/apps/{app}/current"
    forbidden = [f"/srv/apps/{app}/releases/new", f"{current}/venv/bin/new", f"{current}/venv/lib/new",
                 f"/srv/apps/{app}/current.new", f"/etc/circus/watchers.d/{app}.ini", f"/etc/circus/env/{app}.env",
                 f"/etc/nginx/sites-enabled/{app}.conf"]
    for name, host in web.items():
        with host.sudo():
            for path in forbidden:
                tried = host.run(f"runuser -u {app} -- sh -c 'echo x >> {path}'")
                assert tried.rc != 0, f"{name}: {app} could write {path}"
            # Its own data it can write (the check above is not failing for another reason).
            assert host.run(f"runuser -u {app} -- sh -c 'echo x > /srv/apps/{app}/shared/.probe'").rc == 0


def test_the_environment_file_is_root_owned_and_readable_by_the_app_group_only(web):
    for name, host in web.items():
        for app in APPS:
            env = host.file(f"/etc/circus/env/{app}.env")
            assert (env.user, env.group, env.mode) == ("root", app, 0o640), name


def test_only_root_can_use_the_circus_control_socket(web):
    for name, host in web.items():
        with host.sudo():
            assert host.run("circusctl list").rc == 0, name
            for app in APPS:
                assert host.run(f"runuser -u {app} -- /usr/local/sbin/circusctl list").rc != 0, f"{name}: {app}"


def test_nothing_but_nginx_sshd_and_the_exporters_listens_on_tcp(web):
    # The inventory asks for nothing else on the web hosts (the apps listen on unix
    # sockets): sshd, nginx (its stub_status on loopback only), and the exporters, which
    # their firewall table keeps to the monitor host (test_stack_monitoring.py). ss names
    # the program only for root's processes here: the containers lack CAP_SYS_PTRACE.
    exporters = {"9100", "9113", "3903"}
    for name, host in web.items():
        with host.sudo():
            listening = host.check_output("ss -Htlnp | awk '{print $4, $6}'").splitlines()
        programs = {line.split('"')[1] for line in listening if '"' in line}
        sockets = {tuple(line.split()[0].rsplit(":", 1)) for line in listening}
        ports = {port for _, port in sockets}
        assert programs <= {"nginx", "sshd"}, f"{name}: {listening}"
        assert ports <= {"22", "80", "443", "8080"} | exporters, f"{name}: {listening}"
        assert {address for address, port in sockets if port == "8080"} == {"127.0.0.1"}, f"{name}: {listening}"
        assert exporters <= ports, f"{name}: {listening}"
        with host.sudo():
            assert host.check_output("ss -Hulnp | grep -v '127.0.0.11' || true") == "", f"{name}: UDP listeners"


@pytest.fixture(name="verbose_runs", scope="module")
def fixture_verbose_runs(scenario_dir, web):
    """A deploy and a provisioning run at -vvv, the latter with --diff after the env file
    drifted (so the task that writes the secrets reports a change and its diff)."""
    host = web[WEB[0]]
    with host.sudo():
        secrets = {app: host.check_output(f"sed -n 's/^SECRET_KEY=//p' /etc/circus/env/{app}.env").strip("'\"")
                   for app in APPS}
        host.check_output("sed -i 's/^SECRET_KEY=.*/SECRET_KEY=drifted/' /etc/circus/env/webxample.env")
    deployed = deploy(scenario_dir, "1.1.0", "webxample", "-vvv", "--limit", WEB[0])
    provisioned = run_playbook(scenario_dir, PROJECT / "site.yml", "-vvv", "--diff", "--limit", WEB[0])
    with host.sudo():
        restored = host.check_output("sed -n 's/^SECRET_KEY=//p' /etc/circus/env/webxample.env").strip("'\"")
    return secrets, deployed, provisioned, restored


def test_secrets_never_appear_in_verbose_output(verbose_runs):
    secrets, deployed, provisioned, restored = verbose_runs
    assert all(len(s) >= 16 for s in secrets.values()), "the secrets were not read"
    assert deployed.returncode == 0, deployed.stdout[-3000:]
    assert provisioned.returncode == 0, provisioned.stdout[-3000:]
    assert restored == secrets["webxample"], "site.yml did not put the secret back"
    # -vvv took effect (SSH connections are printed only from -vvv on), and the env file
    # was written again (its task reported a change), so its content had a chance to show.
    for run in (deployed, provisioned):
        assert "ESTABLISH SSH CONNECTION" in run.stdout, run.stdout[-3000:]
    env_task = provisioned.stdout.split("TASK [circus : Write the env file of each watcher]", 1)[-1]
    assert "changed: [" in env_task.split("TASK [", 1)[0], env_task[:3000]
    for app, secret in secrets.items():
        assert secret not in deployed.stdout, f"the deploy printed {app}'s secret"
        assert secret not in provisioned.stdout, f"site.yml -vvv --diff printed {app}'s secret"
