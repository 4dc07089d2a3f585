"""Behaviour of the `devpi` role (../converge.yml) and of playbooks/publish.yml.

Each host runs its own devpi: the host itself installs from it by its network name
(http://<host>:3141/, as web hosts will), the controller reaches it on the loopback port
published for it (publish_index_url, 127.0.0.1:2263/2264) to upload with twine and to
run publish.yml. Wheels are built here from the tiny package in ../files/hello-devpi,
with versions unique to this run, since the private index keeps every upload for good.
"""

import base64
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import testinfra
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from sandbox_support import PROJECT, apply_role, assert_check_mode_clean, check_once, recap, run_playbook

SCENARIO = Path(__file__).resolve().parent.parent
FILES = SCENARIO / "files"
# The first host of the `index` group: publish.yml's default index. Host-independent
# checks (publish.yml, creating another account) run against it only.
FIRST = "devpi-debian12"
INDEX_HOSTS = sorted(yaml.safe_load((SCENARIO / "inventory/hosts.yml").read_text(encoding="utf-8"))["all"]["children"]["index"]["hosts"])
RUN = str(int(time.time()))
V1, V2 = f"1.0.{RUN}", f"2.0.{RUN}"
PYPI_PACKAGE = "six==1.16.0"
UNIT = "devpi-server"
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


_settings = {}


def settings(host):
    """The host's inventory variables, with the vaulted passwords decrypted."""
    if host.backend.host in _settings:
        return _settings[host.backend.host]
    hostvars = _settings[host.backend.host] = dict(host.ansible.get_variables())
    vault_password = subprocess.run([str(PROJECT / "tests/sandbox/vault-password")], capture_output=True,
                                    check=True).stdout.strip()
    vault = VaultLib([("sandbox", VaultSecret(vault_password))])
    for name in ("devpi_root_password", "devpi_upload_password"):
        hostvars[name] = vault.decrypt(hostvars[name]["__ansible_vault"]).decode()
    return hostvars


def api(hostvars, path, method="GET", data=None, auth=None):
    """(status, json) of a devpi API call from the controller through the published port."""
    request = urllib.request.Request(hostvars["publish_index_url"] + path, method=method,
                                     data=None if data is None else json.dumps(data).encode(),
                                     headers={"Accept": "application/json", "Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with _no_proxy.open(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body.startswith(b"{") else {}


def root(hostvars):
    return ("root", hostvars["devpi_root_password"])


def can_log_in(hostvars, user, password):
    return api(hostvars, "/+login", "POST", {"user": user, "password": password})[0] == 200


def index_config(hostvars, index):
    status, body = api(hostvars, f"/{index}?no_projects=")
    assert status == 200, body
    return body["result"]


def private_versions(hostvars, project="hello-devpi"):
    status, body = api(hostvars, f"/acme/prod/{project}?ignore_bases=")
    return body.get("result", {}) if status == 200 else {}


def make_source(dest, version, marker="original"):
    """A copy of the tiny package at `dest` with this version; `marker` tells builds apart."""
    shutil.copytree(FILES / "hello-devpi", dest)
    pyproject = dest / "pyproject.toml"
    pyproject.write_text(re.sub(r'^version = ".*"$', f'version = "{version}"', pyproject.read_text(), flags=re.M))
    module = dest / "hello_devpi/__init__.py"
    module.write_text(module.read_text().replace('BUILD = "original"', f'BUILD = "{marker}"'))
    return dest


_wheels = {}


@pytest.fixture(name="wheel", scope="module")
def fixture_wheel(tmp_path_factory):
    """wheel(version, marker) -> path of hello-devpi's wheel, built once per test run."""
    def build(version, marker="original"):
        if (version, marker) not in _wheels:
            src = make_source(tmp_path_factory.mktemp("hello-devpi") / "src", version, marker)
            built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(src / "dist"), str(src)],
                                   capture_output=True, text=True, check=False)
            assert built.returncode == 0, built.stdout + built.stderr
            _wheels[version, marker] = next((src / "dist").glob("*.whl"))
        return _wheels[version, marker]
    return build


def twine_upload(hostvars, wheel_path):
    """Upload a wheel to acme/prod from the controller, as the release playbook does."""
    return subprocess.run(
        [sys.executable, "-m", "twine", "--no-color", "upload", "--non-interactive", "--disable-progress-bar",
         "--repository-url", hostvars["publish_index_url"] + "/acme/prod/", "--username", "acme", str(wheel_path)],
        env={"PATH": "/usr/bin:/bin", "TWINE_PASSWORD": hostvars["devpi_upload_password"]},
        capture_output=True, text=True, timeout=300, check=False)


def pip_install(host, spec, venv="/tmp/devpi-client"):
    """pip in a fresh venv on the host, from acme/prod by the host's network name (not loopback)."""
    name = host.backend.host
    return host.run(f"rm -rf {venv} && python3 -m venv {venv} && {venv}/bin/pip install --isolated --no-cache-dir"
                    f" --timeout 120 --index-url http://{name}:3141/acme/prod/+simple/ --trusted-host {name} {spec}")


def test_devpi_runs_as_its_unprivileged_user(host):
    service = host.service(UNIT)
    assert service.is_running and service.is_enabled
    owner = host.check_output(f"ps -o user=,uid= -C {UNIT}").split()
    assert owner[0] == "devpi" and int(owner[1]) > 0
    account = host.user("devpi")
    assert account.shell == "/usr/sbin/nologin"
    assert host.file("/var/lib/devpi").user == "devpi" and host.file("/var/lib/devpi").mode == 0o700
    assert host.file("/var/lib/devpi/secret").mode == 0o600
    # The code it runs belongs to root: the service cannot rewrite it.
    assert host.file("/opt/devpi/bin/devpi-server").user == "root"
    assert host.check_output("/opt/devpi/bin/devpi-server --version").strip().endswith("6.20.3")
    # The running server waits 30 s for the mirror, not devpi's 5 (devpi/devpi#819).
    assert "--request-timeout 30" in host.check_output(f"ps -o args= -C {UNIT}")


def test_devpi_trusts_the_system_ca_bundle(host):
    # The running server's own environment (devpi-server reads REQUESTS_CA_BUNDLE),
    # readable by its user (root in the container lacks CAP_SYS_PTRACE).
    with host.sudo():
        pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
        environment = host.check_output(f"runuser -u devpi -- sh -c 'tr \"\\0\" \"\\n\" < /proc/{pid}/environ'").splitlines()
    assert "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt" in environment
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in environment


def test_indexes_and_who_may_create_them(host):
    hostvars = settings(host)
    mirror = index_config(hostvars, "root/pypi")
    assert mirror["type"] == "mirror" and mirror["mirror_url"] == "https://pypi.org/simple/"
    assert mirror["mirror_no_project_list"] is True  # never PyPI's whole project list
    private = index_config(hostvars, "acme/prod")
    assert private["bases"] == ["root/pypi"] and private["volatile"] is False
    assert private["acl_upload"] == ["acme"]
    # --restrict-modify root: nobody else registers accounts or indexes.
    assert api(hostvars, f"/intruder{RUN}", "PUT", {"password": "intruder-pw"})[0] in (401, 403)
    assert api(hostvars, f"/acme/dev{RUN}", "PUT", {"bases": ["root/pypi"]},
               auth=("acme", hostvars["devpi_upload_password"]))[0] in (401, 403)


def test_pip_installs_a_pypi_package_through_the_mirror(host):
    result = pip_install(host, PYPI_PACKAGE)
    assert result.rc == 0, result.stdout + result.stderr
    # The file now sits in the mirror's cache: it came through devpi.
    with host.sudo():
        cached = host.check_output("find /var/lib/devpi/server/+files/root/pypi -name 'six-1.16.0*'")
    assert "six-1.16.0" in cached


def test_uploaded_package_installs_from_the_private_index(host, wheel):
    hostvars = settings(host)
    upload = twine_upload(hostvars, wheel(V1))
    assert upload.returncode == 0, upload.stdout + upload.stderr
    result = pip_install(host, f"hello-devpi=={V1}")
    assert result.rc == 0, result.stdout + result.stderr
    assert host.check_output("/tmp/devpi-client/bin/python -c 'import hello_devpi; print(hello_devpi.BUILD)'") == "original"


def test_a_second_upload_of_the_same_version_is_refused(host, wheel):
    hostvars = settings(host)
    assert V1 in private_versions(hostvars), "runs after the first upload"
    upload = twine_upload(hostvars, wheel(V1, "rebuilt"))
    assert upload.returncode != 0
    output = " ".join((upload.stdout + upload.stderr).split())
    assert "409 Conflict" in output and "already exists in non-volatile index" in output, output
    # The index still serves the first upload.
    result = pip_install(host, f"hello-devpi=={V1}")
    assert result.rc == 0, result.stdout + result.stderr
    assert host.check_output("/tmp/devpi-client/bin/python -c 'import hello_devpi; print(hello_devpi.BUILD)'") == "original"


@pytest.fixture(name="first")
def fixture_first():
    """The first index host (testinfra Host), where host-independent checks run."""
    return testinfra.get_host(f"ansible://{FIRST}", ansible_inventory=str(SCENARIO / "inventory"))


def publish(scenario_dir, *args):
    """publish.yml against the scenario's inventory: its default index is FIRST's."""
    return run_playbook(scenario_dir, PROJECT / "playbooks/publish.yml", *args)


def test_publish_playbook_uploads_then_refuses_an_existing_version(first, scenario_dir, wheel, tmp_path):
    hostvars = settings(first)
    source = make_source(tmp_path / "app", V2)
    uploaded = publish(scenario_dir, "-e", f"publish_source={source}", "-vvv")
    assert uploaded.returncode == 0, uploaded.stdout[-4000:]
    assert recap(uploaded, ["localhost"])["localhost"]["changed"] == 1  # the upload
    assert f"Released hello-devpi {V2} to acme/prod at {hostvars['publish_index_url']}" in " ".join(uploaded.stdout.split())
    files = private_versions(hostvars)[V2]["+links"]
    assert [link["href"].rsplit("/", 1)[1] for link in files] == [f"hello_devpi-{V2}-py3-none-any.whl"]

    again = publish(scenario_dir, "-e", f"publish_wheel={wheel(V2, 'rebuilt')}", "-vvv")
    assert again.returncode != 0
    message = " ".join(again.stdout.split())
    assert (f"hello-devpi {V2} is already on acme/prod ({hostvars['publish_index_url']}): a released version is "
            "never overwritten. Give the new release a new version number and build it again. "
            "Nothing was uploaded.") in message, again.stdout[-3000:]
    assert "TASK [Upload the wheel with twine]" not in again.stdout
    assert private_versions(hostvars)[V2]["+links"] == files
    # `make demo` runs it again and again: with publish_skip_existing, not an error.
    skipped = publish(scenario_dir, "-e", f"publish_source={source}", "-e", "publish_skip_existing=true")
    assert skipped.returncode == 0, skipped.stdout[-4000:]
    assert (f"hello-devpi {V2} is already on acme/prod ({hostvars['publish_index_url']}); "
            "publish_skip_existing: nothing was uploaded.") in " ".join(skipped.stdout.split()), skipped.stdout[-3000:]
    assert recap(skipped, ["localhost"])["localhost"]["changed"] == 0
    assert "TASK [Upload the wheel with twine]" not in skipped.stdout
    assert private_versions(hostvars)[V2]["+links"] == files
    for output in (uploaded.stdout, again.stdout):
        assert hostvars["devpi_upload_password"] not in output
    # The old name, kept for one release: says so, then does the same under the new names.
    old = run_playbook(scenario_dir, PROJECT / "playbooks/release.yml",
                       extra_vars={"release_source": str(source), "release_skip_existing": True})
    assert old.returncode == 0, old.stdout[-4000:]
    said = " ".join(old.stdout.split())
    assert "DEPRECATED: playbooks/release.yml is now playbooks/publish.yml" in said, old.stdout[-3000:]
    assert (f"hello-devpi {V2} is already on acme/prod ({hostvars['publish_index_url']}); "
            "publish_skip_existing: nothing was uploaded.") in said, old.stdout[-3000:]


def publish_usage(source="", wheel="", skip_existing=False):
    """publish.yml's sentence for input it refuses, with the values it got."""
    return ("Give exactly one of -e publish_source=<project directory> (built with python -m build --wheel) or "
            "-e publish_wheel=<file>.whl (a wheel file named name-version-python-abi-platform.whl); "
            f"got publish_source={json.dumps(source)}, publish_wheel={json.dumps(wheel)}; "
            f"publish_skip_existing is true or false (got {json.dumps(skip_existing)}). Nothing was uploaded.")


# Each message is the whole sentence publish.yml prints for that input, compared with
# runs of whitespace made single spaces. A run that fails for any other reason does not
# print it.
@pytest.mark.parametrize(("extra_vars", "message"), [
    ({}, publish_usage()),
    ({"publish_source": "molecule/devpi/files/hello-devpi", "publish_wheel": "x-1.0-py3-none-any.whl"},
     publish_usage(source="molecule/devpi/files/hello-devpi", wheel="x-1.0-py3-none-any.whl")),
    ({"publish_wheel": "/nonexistent/hello_devpi-1.0-py3-none-any.whl"},
     "publish_wheel /nonexistent/hello_devpi-1.0-py3-none-any.whl is not a file "
     "(/nonexistent/hello_devpi-1.0-py3-none-any.whl). Nothing was uploaded."),
    ({"publish_source": "molecule/devpi", "publish_index_host": "nohost"},
     'The index host "nohost" must be a host of the inventory\'s `index` group (-e publish_index_host=<host> picks '
     "another one) with publish_index_url (devpi's URL as this controller reaches it, e.g. "
     'https://index.example.com; got "nothing"), devpi_upload_user and devpi_index_name (the private index, '
     'got "/") and devpi_upload_password (from Ansible Vault) set; with a TLS front, the host of '
     "publish_index_url must be one of its devpi_server_names (got []): its nginx answers no other name. "
     "Nothing was uploaded."),
    ({"publish_source": "molecule/devpi", "publish_skip_existing": "sometimes"},
     publish_usage(source="molecule/devpi", skip_existing="sometimes")),
])
def test_publish_playbook_checks_its_input_first(scenario_dir, extra_vars, message):
    result = run_playbook(scenario_dir, PROJECT / "playbooks/publish.yml", extra_vars=extra_vars)
    assert result.returncode != 0, result.stdout[-3000:]
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    summary = recap(result, ["localhost"])["localhost"]
    assert (summary["changed"], summary["failed"]) == (0, 1), result.stdout[-3000:]


DRIFT = [  # (path, body): what an operator might change by hand, with root's rights
    ("/acme", {"password": "drifted-upload-pw"}),
    ("/acme/prod", ["volatile=True", "bases="]),
    ("/root/pypi", ["mirror_url=https://mirror.invalid/simple/", "mirror_no_project_list=False"]),
    ("/root", {"password": "drifted-root-pw"}),
]


@pytest.fixture(name="drift_put_back", scope="module")
def fixture_drift_put_back(scenario_dir):
    """Drift on every index host, then one converge.yml run for all of them (not one per
    host); what each host answers afterwards, for each host's test."""
    hosts = [testinfra.get_host(f"ansible://{name}", ansible_inventory=str(SCENARIO / "inventory"))
             for name in INDEX_HOSTS]
    drifted = {h.backend.host: [api(settings(h), path, "PATCH", body, auth=root(settings(h)))[0] for path, body in DRIFT]
               for h in hosts}
    result = run_playbook(scenario_dir, "converge.yml", "-vvv")
    seen = {}
    for h in hosts:
        hostvars = settings(h)
        seen[h.backend.host] = {
            "drifted": drifted[h.backend.host],
            "root_login": can_log_in(hostvars, "root", hostvars["devpi_root_password"]),
            "upload_login": can_log_in(hostvars, "acme", hostvars["devpi_upload_password"]),
            "private": api(hostvars, "/acme/prod?no_projects="),
            "mirror": api(hostvars, "/root/pypi?no_projects="),
        }
    return {"result": result, "hosts": seen}


def test_drift_is_put_back_without_logging_a_password(host, drift_put_back):
    hostvars = settings(host)
    seen = drift_put_back["hosts"][host.backend.host]
    assert seen["drifted"] == [200] * len(DRIFT)
    result = drift_put_back["result"]
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result, [host.backend.host])[host.backend.host]["changed"] >= 5
    for secret in (hostvars["devpi_root_password"], hostvars["devpi_upload_password"]):
        assert secret not in result.stdout
    assert seen["root_login"]
    assert seen["upload_login"]
    status, private = seen["private"]
    assert status == 200, private
    assert private["result"]["bases"] == ["root/pypi"] and private["result"]["volatile"] is False
    status, mirror = seen["mirror"]
    assert status == 200, mirror
    mirror = mirror["result"]
    assert mirror["mirror_url"] == "https://pypi.org/simple/" and mirror["mirror_no_project_list"] is True


def test_a_new_upload_user_and_index_are_created_without_logging_a_password(first, scenario_dir):
    hostvars = settings(first)
    user = f"team{RUN}"
    result = apply_role(scenario_dir, "devpi", {"devpi_upload_user": user, "devpi_index_name": "stable"},
                        "--limit", FIRST, "-vvv")
    assert result.returncode == 0, result.stdout[-4000:]
    for secret in (hostvars["devpi_root_password"], hostvars["devpi_upload_password"]):
        assert secret not in result.stdout
    assert can_log_in(hostvars, user, hostvars["devpi_upload_password"])
    created = index_config(hostvars, f"{user}/stable")
    assert created["bases"] == ["root/pypi"] and created["volatile"] is False and created["acl_upload"] == [user]


# The settings of the scenario (inventory/group_vars/index/devpi.yml, the role's defaults).
SETTINGS = {"devpi_host": "0.0.0.0", "devpi_port": 3141, "devpi_request_timeout": 30,
            "devpi_mirror_url": "https://pypi.org/simple/", "devpi_upload_user": "acme", "devpi_index_name": "prod",
            "devpi_user": "devpi"}


def invalid_settings(**bad):
    """The role's sentence for settings it refuses: every setting with the value it got."""
    got = {name: json.dumps(value) for name, value in dict(SETTINGS, **bad).items()}
    return (f"Invalid devpi settings: devpi_host must be an IP address or host name (got {got['devpi_host']}), "
            f"devpi_port a TCP port 1-65535 (got {got['devpi_port']}), "
            f"devpi_request_timeout 1-600 seconds (got {got['devpi_request_timeout']}), "
            f"devpi_mirror_url an http(s) URL without spaces (got {got['devpi_mirror_url']}), "
            "devpi_upload_user (not root) and devpi_index_name lower-case letters, digits, '.', '_' or '-' "
            f"(got {got['devpi_upload_user']}, {got['devpi_index_name']}), "
            f"devpi_user a system user name other than root (got {got['devpi_user']}), and devpi_data_dir, "
            "devpi_venv and devpi_ca_bundle absolute paths. Nothing was changed.")


# Each message is the whole sentence the role (or Ansible's argument-spec check) prints
# for that input, compared with runs of whitespace made single spaces; "{host}" is the
# host's name. A run that fails for any other reason does not print it.
@pytest.mark.parametrize(("role_vars", "message"), [
    ({"devpi_port": 70000}, invalid_settings(devpi_port=70000)),
    ({"devpi_port": "many"},
     "argument 'devpi_port' is of type str and we were unable to convert to int: \"'many'\" cannot be converted "
     "to an int"),
    ({"devpi_upload_password": ""},
     "devpi_root_password and devpi_upload_password must each be set to one line of at least 8 characters, "
     'from Ansible Vault (e.g. devpi_root_password: "{{{{ vault_devpi_root_password }}}}"). Nothing was changed.'),
    ({"devpi_upload_user": "root"}, invalid_settings(devpi_upload_user="root")),
    ({"devpi_mirror_url": "https://pypi.org/my simple/"},
     invalid_settings(devpi_mirror_url="https://pypi.org/my simple/")),
    ({"devpi_ca_bundle": "/nonexistent/ca.pem"},
     "devpi_ca_bundle /nonexistent/ca.pem is not a file on {host} (install ca-certificates). Nothing was changed."),
    ({"devpi_request_timeout": 0}, invalid_settings(devpi_request_timeout=0)),
    ({"devpi_tls": {"acme": {}}},
     "devpi_server_names must be host names (got []), and devpi_tls needs them: nginx answers for those names in "
     "front of devpi-server; devpi_client_max_body_size is a size such as 64m (got \"64m\"). Nothing was changed."),
])
def test_bad_input_fails_clearly_and_changes_nothing(host, scenario_dir, role_vars, message):
    check_once(host)
    snapshot = (f"sha256sum /etc/systemd/system/{UNIT}.service; systemctl show -p MainPID -p ActiveEnterTimestamp {UNIT};"
                " ls -la --time-style=full-iso /var/lib/devpi /var/lib/devpi/server")
    with host.sudo():
        before = host.check_output(snapshot)
    result = apply_role(scenario_dir, "devpi", role_vars, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    assert message.format(host=host.backend.host) in " ".join(result.stdout.split()), result.stdout[-3000:]
    with host.sudo():
        assert host.check_output(snapshot) == before


def test_check_mode_reports_no_change(scenario_dir):
    assert_check_mode_clean(scenario_dir)
