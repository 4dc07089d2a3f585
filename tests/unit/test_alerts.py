"""The prometheus role's alerting rules (roles/prometheus/templates/etc/prometheus/rules/
webdeploy.yml.j2), rendered by Ansible as the role renders them, then checked with
`promtool check rules` and unit-tested with `promtool test rules`
(roles/prometheus/tests/webdeploy.test.yml): each alert fires when it should, with the
labels and sentences the operator reads, and not before. promtool is Debian's
(scripts/bootstrap puts it in .venv/bin)."""

import json
import shutil
import subprocess

import pytest
from sandbox_support import PROJECT

ROLE = PROJECT / "roles/prometheus"
PROMTOOL = PROJECT / ".venv/bin/promtool"


@pytest.fixture(name="promtool", scope="module")
def fixture_promtool():
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run scripts/bootstrap (make test does)"
    return str(PROMTOOL)


def render(tmp_path, **extra):
    """The rules file as the role writes it, with its defaults and `extra` variables."""
    out = tmp_path / "webdeploy.yml"
    subprocess.run(
        [str(PROJECT / ".venv/bin/ansible"), "localhost", "-c", "local", "-m", "ansible.builtin.template",
         "-a", f"src={ROLE}/templates/etc/prometheus/rules/webdeploy.yml.j2 dest={out}",
         "-e", f"@{ROLE}/defaults/main.yml", "-e", json.dumps(extra)],
        check=True, capture_output=True, text=True, cwd=PROJECT)
    return out


def test_the_rules_pass_promtool_check(tmp_path, promtool):
    got = subprocess.run([promtool, "check", "rules", str(render(tmp_path))], capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "SUCCESS: 8 rules found" in got.stdout


def test_each_alert_fires_when_it_should(tmp_path, promtool):
    render(tmp_path)
    shutil.copy(ROLE / "tests/webdeploy.test.yml", tmp_path)
    got = subprocess.run([promtool, "test", "rules", "webdeploy.test.yml"], capture_output=True, text=True, cwd=tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "SUCCESS" in got.stdout


def test_the_thresholds_are_the_operators(tmp_path, promtool):
    """With app-down after 5 minutes, the tests written for 1 minute fail: the variable
    reaches the rule."""
    render(tmp_path, prometheus_alert_app_down_for="5m")
    shutil.copy(ROLE / "tests/webdeploy.test.yml", tmp_path)
    got = subprocess.run([promtool, "test", "rules", "webdeploy.test.yml"], capture_output=True, text=True, cwd=tmp_path)
    assert got.returncode == 1
    assert "alertname: WebdeployAppDown" in got.stdout + got.stderr


def test_extra_rules_join_the_group(tmp_path, promtool):
    rules = render(tmp_path, prometheus_extra_rules=[
        {"alert": "ShopSlow", "expr": "histogram_quantile(0.99, rate(x_bucket[5m])) > 1", "for": "10m",
         "labels": {"severity": "warning"}}])
    got = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "SUCCESS: 9 rules found" in got.stdout
