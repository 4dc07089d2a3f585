"""Bad input, after test_stack_faults.py: every case fails with a message naming the bad
value, before anything changes on a host, while the serving release stays untouched
(checked over HTTP and by reading `current`).

The rules for an app's fields are unit-tested (tests/unit/test_webapp_apps.py, the
webapp_errors filter); here one bad app definition per entry point (site.yml, deploy.yml,
rollback.yml, playbooks/smoke.yml) proves that each one checks it before any change.

The cases change nothing (that is the point), so they run side by side, four at a time:
the hosts' state is read before the first and after the last, and each case's recap must
report no change on any host.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from sandbox_support import PROJECT, recap, run_playbook
from stack_support import WEB, link, serving

# What a run could change: the apps' trees (not their data or logs), the config the
# roles write, the accounts. Names, sizes, modes, owners and times, and file contents.
SNAPSHOT = ("find /srv/apps -path '*/shared' -prune -o -printf '%p %s %m %u %g %T@ %l\\n'; "
            "find /etc/nginx /etc/circus /etc/logrotate.d /etc/sudoers.d /etc/ssh /etc/uv -type f "
            "-exec sha256sum {} +; sha256sum /etc/passwd /etc/group")


def _vault(loader, node):
    return loader.construct_scalar(node)


def scenario_apps(scenario_dir):
    """webapp_apps as the scenario's inventory defines it (secrets stay Jinja references)."""
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_constructor("!vault", _vault)
    text = (scenario_dir / "inventory/group_vars/web/apps.yml").read_text()
    return yaml.load(text, Loader=loader)["webapp_apps"]


def with_first_app(scenario_dir, **fields):
    apps = scenario_apps(scenario_dir)
    apps[0] = {**apps[0], **fields}
    return apps


DEPLOY, ROLLBACK, SITE, SMOKE = "deploy.yml", "rollback.yml", "site.yml", "playbooks/smoke.yml"
NUMBER_1_1 = ('app_version must be a string, but it was read as the number 1.1: YAML and JSON read an unquoted '
              'version as a number (1.10 becomes 1.1). Quote it: -e app_version=1.10 on the command line, '
              'app_version: "1.10" in YAML.')
V = "webxample"
# (id, playbook, extra vars (None: the default), environment, message naming the bad value)
CASES = [
    ("empty version", DEPLOY, {"app_name": V, "app_version": ""}, {}, 'got "".'),
    ("version with spaces", DEPLOY, {"app_name": V, "app_version": "1.0 0"}, {}, 'got "1.0 0".'),
    ("version ../../etc", DEPLOY, {"app_name": V, "app_version": "../../etc"}, {}, 'got "../../etc".'),
    ("version 1.0;id", DEPLOY, {"app_name": V, "app_version": "1.0;id"}, {}, 'got "1.0;id".'),
    ("version $(id)", DEPLOY, {"app_name": V, "app_version": "$(id)"}, {}, 'got "$(id)".'),
    ("version with a newline", DEPLOY, {"app_name": V, "app_version": "1.0\nid"}, {}, 'got "1.0\\nid".'),
    ("version of 300 characters", DEPLOY, {"app_name": V, "app_version": "1" * 300}, {},
     f'at most 64 characters), got "{"1" * 300}".'),
    ("version not in the index", DEPLOY, {"app_name": V, "app_version": "9.9.9"}, {},
     'webxample "9.9.9" cannot be installed from the package index (it has no such version)'),
    ("rollback to a version not on disk", ROLLBACK, {"app_name": V, "app_version": "9.9.9"}, {},
     f"webxample 9.9.9 is not on {WEB[0]}"),
    ("unknown app", DEPLOY, {"app_name": "nosuchapp", "app_version": "1.0.0"}, {}, 'No app named "nosuchapp" here'),
    ("missing app_version", DEPLOY, {"app_name": V}, {}, 'app_version must be a release version'),
    # One bad app definition per entry point (the rules: tests/unit/test_webapp_apps.py).
    # Readiness: deploys wait until the new processes are ready, not a fixed warm-up.
    ("reload_warmup, a removed field", DEPLOY, "reload_warmup=5", {},
     "Invalid webapp_apps: app webxample: reload_warmup is no longer used: a deploy waits until the new processes"
     " are ready, at most canary_timeout seconds; remove it"),
    ("rollback with keep_releases 1", ROLLBACK, "keep_releases=1", {},
     "Invalid webapp_apps: app webxample: keep_releases must be 2 or more (current and previous)"),
    ("smoke test of an app with a misspelt field", SMOKE, "numprocess=4", {},
     "Invalid webapp_apps: app webxample: unknown field(s) numprocess; the fields are backlog, canary_timeout, check_command,"),
    # The paths the roles share are spelled once (group_vars/all/paths.yml): a setting an
    # older version read is refused, not ignored for the default path.
    ("webapp_root, now webdeploy_app_root", SITE, "webapp_root=/opt/apps", {},
     "These settings are no longer read: webapp_root (set webdeploy_app_root instead). The shared paths are in"
     " group_vars/all/paths.yml."),
    # The users play comes first in site.yml: without the checks of every role up front it
    # would create the new operator before the webapp role refused the server name.
    ("server name with a space, and a new operator", SITE, "server_names=bad name.test, operator", {},
     'app webxample: server_names must be names without spaces'),
    ("watcher with a user that does not exist", SITE, "ghost watcher", {}, "watcher ghost: user nosuchuser does not exist"),
    # The deploy's work runs at lowered priority (release_work_*): a weight systemd refuses
    # would fail the first install, after the lock; it is refused up front.
    ("CPU weight 0", DEPLOY, {"app_name": V, "app_version": "1.0.0", "release_work_cpu_weight": 0}, {},
     "release_work_cpu_weight and release_work_io_weight are systemd weights from 1 to 10000 (services weigh 100);"
     " got 0 and 10."),
    # A backlog above net.core.somaxconn (4096 in the containers) would be capped without a word.
    ("app backlog above somaxconn", SITE, "backlog=65535", {},
     f"On {WEB[0]}: app webxample: backlog 65535 is above 4096: the kernel would cap it at net.core.somaxconn 4096"
     " without a word. Raise that sysctl or lower the app's backlog. Nothing was changed."),
    # Metrics: the exporters' firewall and the monitor host's alerts (site.yml runs on web
    # and monitor hosts here); the exporters' input is checked on every host.
    ("exporters source that is not an address", SITE, {"exporters_allowed_sources": ["10.0.0.0/8", "monitor"]}, {},
     "exporters_allowed_sources a list of IP addresses or networks such as 10.0.0.5 or 10.0.0.0/24"
     ' (not addresses: "monitor").'),
    ("alert duration in words", SITE, {"prometheus_alert_app_down_for": "5 minutes"}, {},
     "These settings must be Prometheus durations such as 30s, 5m, 1h or 15d:"
     ' prometheus_alert_app_down_for (got "5 minutes").'),
    # The receiver's firewall looks up its senders on the monitor host, in the first play.
    ("log sender that does not resolve", SITE, {"log_receiver_sender_hosts": [WEB[0], "nosuchhost"]}, {},
     "stack-monitor cannot resolve the web hosts nosuchhost, so the firewall of the log receiver could not"
     " let them in: make the name resolve on this host"),
    ("log queue size in words", SITE, {"log_shipper_queue_max_disk_space": "lots"}, {},
     'log_shipper_queue_max_disk_space must be a size such as 512m or 2g (got "lots")'),
    ("vault password file missing", DEPLOY, {"app_name": V, "app_version": "1.0.0"},
     {"ANSIBLE_VAULT_IDENTITY_LIST": "sandbox@/nonexistent/vault-password"},
     "The vault password file /nonexistent/vault-password was not found"),
    # YAML and JSON read an unquoted 1.10 as the number 1.1 (pip's ==1.1 would install 1.1.0).
    ("version read as a number", DEPLOY, {"app_name": V, "app_version": 1.10}, {}, NUMBER_1_1),
    ("rollback version read as a number", ROLLBACK, {"app_name": V, "app_version": 1.10}, {}, NUMBER_1_1),
]
# The runs that stop before any play (ansible-playbook refuses to start): no recap.
NO_PLAY = {"vault password file missing"}


def extra_vars(scenario_dir, spec):
    if isinstance(spec, dict):
        return spec
    if spec == "reload_warmup=5":
        return {"app_name": V, "app_version": "1.0.0", "webapp_apps": with_first_app(scenario_dir, reload_warmup=5)}
    if spec == "keep_releases=1":
        return {"app_name": V, "webapp_apps": with_first_app(scenario_dir, keep_releases=1)}
    if spec == "numprocess=4":
        return {"app_name": V, "app_version": "1.0.0", "webapp_apps": with_first_app(scenario_dir, numprocess=4)}
    if spec == "backlog=65535":
        return {"webapp_apps": with_first_app(scenario_dir, backlog=65535)}
    if spec == "webapp_root=/opt/apps":
        return {"webapp_root": "/opt/apps"}
    if spec == "server_names=bad name.test, operator":
        return {"webapp_apps": with_first_app(scenario_dir, server_names=["bad name.test"]),
                "users_operators": [{"name": "newop", "comment": "must not be created"}]}
    if spec == "ghost watcher":
        return {"circus_watchers": [{"name": "ghost", "command": "/bin/sleep", "args": ["600"], "uid": "nosuchuser"}]}
    raise ValueError(spec)


def run_case(scenario_dir, case):
    _, playbook, spec, env, _ = case
    args = ["--limit", "web:monitor"] if playbook == SITE else []
    return run_playbook(scenario_dir, PROJECT / playbook, *args, extra_vars=extra_vars(scenario_dir, spec), env=env)


def state(web):
    return {name: (serving(h), serving(h, "shop.test"), link(h, "webxample", "current"), link(h, "shop", "current"),
                   h.check_output(SNAPSHOT)) for name, h in web.items()}


@pytest.fixture(name="bad_runs", scope="module")
def fixture_bad_runs(scenario_dir, web):
    before = state(web)
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip((c[0] for c in CASES), pool.map(lambda c: run_case(scenario_dir, c), CASES)))
    return before, results, state(web)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_before_anything_changes(bad_runs, case):
    name, _, _, _, message = case
    result = bad_runs[1][name]
    assert result.returncode != 0, result.stdout[-3000:]
    text = " ".join(result.stdout.split())
    assert message in text, text[-3000:]
    if name in NO_PLAY:
        assert result.stats is None, result.stdout[-3000:]
        return
    # The first web host is always reached (every play's first batch); nothing changed anywhere.
    changed = {h: s["changed"] for h, s in recap(result, [WEB[0]]).items()}
    assert changed == dict.fromkeys(changed, 0), f"{name}: changes reported {changed}"


def test_no_bad_input_changed_the_hosts_or_what_they_serve(bad_runs):
    before, _, after = bad_runs
    for name in WEB:
        assert before[name][:4] == after[name][:4], (before[name][:4], after[name][:4])
        assert before[name][4] == after[name][4], f"{name}: the files changed"
    print(json.dumps({n: s[:4] for n, s in after.items()}))
