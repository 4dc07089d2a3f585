"""A version that did not arrive as a string is refused before any host changes.

YAML and JSON read an unquoted 1.10 as the number 1.1; `| string` would then make it
"1.1", a valid version of the wrong release (pip's ==1.1 installs 1.1.0). The filter
(plugins/filter/versions.py) is tested on its own, then the playbooks are run against a
host that cannot be reached: the check runs on the controller, so the run must fail on
it, with no host reached and nothing changed. A check that let the number through
would show as the host being unreachable instead.
"""

import importlib.util
import os

import pytest
from sandbox_support import ANSIBLE_PLAYBOOK, PROJECT, recap, run_ansible_playbook

_spec = importlib.util.spec_from_file_location("versions", PROJECT / "plugins/filter/versions.py")
versions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(versions)
version_type_error = versions.version_type_error

NUMBER_1_1 = ('app_version must be a string, but it was read as the number 1.1: YAML and JSON read an unquoted '
              'version as a number (1.10 becomes 1.1). Quote it: -e app_version=1.10 on the command line, '
              'app_version: "1.10" in YAML.')


@pytest.mark.parametrize("value", ["1.10", "", "1.0.0", "not a version"])
def test_a_string_passes_the_type_check(value):
    # Whether it is a valid version is the release role's next check.
    assert version_type_error(value, "app_version") == ""


def test_a_float_names_the_number_read_and_how_to_quote_it():
    assert version_type_error(1.10, "app_version") == NUMBER_1_1


def test_an_integer_is_a_number_too():
    assert version_type_error(2, "release_version") == (
        'release_version must be a string, but it was read as the number 2: YAML and JSON read an unquoted '
        'version as a number (1.10 becomes 1.1). Quote it: -e release_version=1.10 on the command line, '
        'release_version: "1.10" in YAML.')


@pytest.mark.parametrize(("value", "read_as"), [
    (True, "the boolean true"),
    (None, "null (an empty value)"),
    (["1.0"], "a list"),
    ({"1": 0}, "a mapping"),
])
def test_other_types_are_named(value, read_as):
    assert version_type_error(value, "app_version") == (
        f'app_version must be a string, but it was read as {read_as}. Give one version as a string: '
        f'-e app_version=1.2.3 on the command line, app_version: "1.2.3" in YAML.')


# --- the playbooks ----------------------------------------------------------------

INVENTORY = """\
web:
  hosts:
    nowhere:
      ansible_host: 127.0.0.1
      ansible_port: 1
      ansible_connection: ssh
"""


def run(tmp_path, playbook, *extra):
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    return run_ansible_playbook([str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), str(PROJECT / playbook),
                                 *extra], dict(os.environ), timeout=120)


@pytest.mark.parametrize(("playbook", "how"), [
    ("deploy.yml", "json"),
    ("deploy.yml", "vars file"),
    ("rollback.yml", "json"),
    ("playbooks/smoke.yml", "json"),
])
def test_a_number_is_refused_before_any_host_is_reached(tmp_path, playbook, how):
    if how == "json":
        extra = ["-e", '{"app_version": 1.10}']
    else:
        (tmp_path / "vars.yml").write_text("app_version: 1.10\n")
        extra = ["-e", f"@{tmp_path / 'vars.yml'}"]
    result = run(tmp_path, playbook, *extra)
    assert result.returncode != 0, result.stdout[-3000:]
    assert NUMBER_1_1 in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert recap(result, ["nowhere"])["nowhere"] == {"ok": 0, "changed": 0, "unreachable": 0, "failed": 1}


def test_the_release_role_refuses_a_number_itself(tmp_path):
    result = run(tmp_path, "tests/playbooks/apply-role.yml", "-e", '{"role_under_test": "release", "release_version": 1.10}')
    assert result.returncode != 0, result.stdout[-3000:]
    assert NUMBER_1_1.replace("app_version", "release_version") in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert recap(result, ["nowhere"])["nowhere"]["unreachable"] == 0, result.stdout[-3000:]


def test_the_quoted_version_passes_the_check(tmp_path):
    # The control: "1.10" as a string gets past the check, to the release role's next
    # one (this inventory defines no app).
    result = run(tmp_path, "deploy.yml", "-e", "app_version=1.10")
    text = " ".join(result.stdout.split())
    assert "must be a string" not in text
    assert "No app to deploy: define it in webapp_apps for this host's inventory." in text, result.stdout[-3000:]


def test_a_recap_that_names_no_host_is_refused():
    from sandbox_support import PlaybookRun
    empty = PlaybookRun(0, "", {"ok": {}, "changed": {}, "dark": {}, "failures": {}, "processed": {}}, [])
    with pytest.raises(AssertionError, match="names no host"):
        recap(empty)
