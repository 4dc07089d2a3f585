"""Behaviour of the `python` role: uv builds per-release virtualenvs for app users."""

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import testinfra
import yaml
from sandbox_support import apply_role, assert_check_mode_clean, check_once

SCENARIO_DIR = Path(__file__).resolve().parent.parent
HOSTS = sorted(yaml.safe_load((SCENARIO_DIR / "inventory/hosts.yml").read_text(encoding="utf-8"))["all"]["hosts"])

UV_VERSION = "0.13.9"
WORK = "/srv/pyapp-test"
# Nothing listens on port 9: an install that uses this index fails naming it.
UNUSED_INDEX = "http://127.0.0.1:9/simple/"


def tiny_wheel(version="1.0"):
    """A minimal pure-Python wheel (name, bytes), built here so the test needs no index."""
    dist = f"hello_release-{version}"
    files = {
        "hello_release/__init__.py": f'VERSION = "{version}"\n',
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: hello-release\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as whl:
        for name, text in files.items():
            data = text.encode()
            whl.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        whl.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return f"{dist}-py3-none-any.whl", buf.getvalue()


@pytest.fixture(name="app_dir")
def fixture_app_dir(host):
    """A directory owned by the app user, removed afterwards."""
    with host.sudo():
        host.check_output(f"rm -rf {WORK} && install -d -o pyapp -g pyapp {WORK}")
    yield WORK
    with host.sudo():
        host.check_output(f"rm -rf {WORK}")


def as_app(host, command):
    """Run a shell command as the (nologin) app user, with a cache it can write."""
    with host.sudo():
        return host.run(f"cd {WORK} && runuser -u pyapp -- env HOME={WORK} UV_CACHE_DIR={WORK}/cache sh -c {command!r}")


def test_uv_is_pinned_and_on_the_path(host):
    assert host.check_output("uv --version").split()[:2] == ["uv", UV_VERSION]
    assert host.file("/usr/local/bin/uv").linked_to == "/opt/uv/bin/uv"


def test_uv_builds_a_venv_for_the_app_user_and_installs_a_wheel(host, app_dir):
    name, data = tiny_wheel()
    with host.sudo():
        host.check_output(f"echo {base64.b64encode(data).decode()} | base64 -d > {app_dir}/{name}")
    result = as_app(host, f"uv venv {app_dir}/1.0 && uv pip install --no-index --python {app_dir}/1.0 {app_dir}/{name}")
    assert result.rc == 0, result.stderr
    out = as_app(host, f"{app_dir}/1.0/bin/python -c 'import hello_release, sys; print(hello_release.VERSION, sys.base_prefix)'")
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ["1.0", "/usr"]  # the distribution's interpreter
    assert host.file(f"{app_dir}/1.0/pyvenv.cfg").user == "pyapp"


def test_uv_installs_from_the_default_index(host, app_dir):
    result = as_app(host, f"uv venv -q {app_dir}/v && uv pip install -q --python {app_dir}/v six==1.16.0"
                          f" && {app_dir}/v/bin/python -c 'import six; print(six.__version__)'")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "1.16.0"


def test_uv_never_downloads_an_interpreter(host, app_dir):
    # 3.12 is neither Debian 12's (3.11) nor Debian 13's (3.13) python3.
    result = as_app(host, f"uv venv --python 3.12 {app_dir}/other")
    assert result.rc != 0
    assert not host.file(f"{app_dir}/other/bin/python").exists


@pytest.fixture(name="index_url_applied", scope="module")
def fixture_index_url_applied(scenario_dir):
    """python_index_url set to an unused port on every host at once (one run of the role
    for both hosts), an install tried with uv and with pip on each, then the setting
    removed again. What each host showed, for each host's test."""
    hosts = [testinfra.get_host(f"ansible://{name}", ansible_inventory=str(SCENARIO_DIR / "inventory"))
             for name in HOSTS]
    seen = {}
    for host in hosts:
        with host.sudo():
            host.check_output(f"rm -rf {WORK} && install -d -o pyapp -g pyapp {WORK}")
    try:
        applied = apply_role(scenario_dir, "python", {"python_index_url": UNUSED_INDEX})
        try:
            if applied.returncode == 0:
                for host in hosts:
                    seen[host.backend.host] = {
                        "uv": as_app(host, f"uv venv -q {WORK}/v && uv pip install --python {WORK}/v six"),
                        "pip": as_app(host, f"python3 -m venv {WORK}/p && {WORK}/p/bin/pip download --no-deps -d {WORK} six"),
                    }
        finally:
            restored = apply_role(scenario_dir, "python", {})
        for host in hosts:
            seen.setdefault(host.backend.host, {})["pip_conf_left"] = host.file("/etc/pip.conf").exists
    finally:
        for host in hosts:
            with host.sudo():
                host.check_output(f"rm -rf {WORK}")
    return {"applied": applied, "restored": restored, "hosts": seen}


def test_index_url_setting_reaches_pip_and_uv(host, index_url_applied):
    applied, restored = index_url_applied["applied"], index_url_applied["restored"]
    seen = index_url_applied["hosts"][host.backend.host]
    assert applied.returncode == 0, applied.stdout[-3000:]
    # Each fails to fetch six from the unused index: the setting reached it.
    uv = seen["uv"]
    assert uv.rc != 0 and f"Failed to fetch: {UNUSED_INDEX}six/" in uv.stderr, uv.stdout + uv.stderr
    pip = seen["pip"]
    assert pip.rc != 0, pip.stdout + pip.stderr
    assert f"Looking in indexes: {UNUSED_INDEX}" in pip.stdout, pip.stdout + pip.stderr
    assert "ERROR: No matching distribution found for six" in pip.stderr, pip.stdout + pip.stderr
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert not seen["pip_conf_left"]


def invalid_settings(index_url="", uv_version=UV_VERSION):
    """The role's sentence for settings it refuses, with the values it got."""
    return (f"python_index_url must be empty or an http(s) URL without spaces (got {json.dumps(index_url)}); "
            f"python_uv_version an exact version such as 0.13.9 (got {json.dumps(uv_version)}); "
            "python_uv_venv and webdeploy_uv absolute paths.")


# Each message is the whole sentence the role (or Ansible's argument-spec check) prints
# for that input, compared with runs of whitespace made single spaces. A run that fails
# for any other reason does not print it.
@pytest.mark.parametrize(("role_vars", "message"), [
    ({"python_index_url": "http://index example/simple"}, invalid_settings(index_url="http://index example/simple")),
    ({"python_uv_version": ">=0.1"}, invalid_settings(uv_version=">=0.1")),
    ({"python_uv_python_downloads": "sometimes"},
     "value of python_uv_python_downloads must be one of: never, manual, automatic, got: sometimes"),
])
def test_bad_input_fails_clearly_and_changes_nothing(host, scenario_dir, role_vars, message):
    check_once(host)
    snapshot = "sha256sum /etc/uv/uv.toml; ls -la --time-style=full-iso /etc/pip.conf /opt/uv/bin 2>&1; true"
    before = host.check_output(snapshot)
    result = apply_role(scenario_dir, "python", role_vars, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert host.check_output(snapshot) == before


def test_check_mode_reports_no_change(scenario_dir):
    assert_check_mode_clean(scenario_dir)
