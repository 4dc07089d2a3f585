"""The repository's shape: thin entry points, inventories, cross-environment group_vars."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from sandbox_support import ANSIBLE_PLAYBOOK, PROJECT

ENTRY_POINTS = ("site.yml", "deploy.yml", "rollback.yml")
INVENTORIES = sorted(p.name for p in (PROJECT / "inventories").iterdir() if p.is_dir())
ANSIBLE_INVENTORY = ANSIBLE_PLAYBOOK.parent / "ansible-inventory"


def load_yaml(path):
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def inventory_hostvars(env):
    """Host variables of an inventory as playbooks under playbooks/ see them."""
    out = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(PROJECT / "inventories" / env),
         "--playbook-dir", str(PROJECT / "playbooks"), "--list"],
        cwd=PROJECT, text=True, capture_output=True, check=True)
    return json.loads(out.stdout)


def test_environments_exist():
    assert {"sandbox", "staging", "prod"} <= set(INVENTORIES)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_root_playbooks_only_import_from_playbooks_dir(entry):
    plays = load_yaml(PROJECT / entry)
    assert plays, entry
    for play in plays:
        target = play.get("ansible.builtin.import_playbook")
        assert target and target.startswith("playbooks/"), f"{entry}: {play}"
        assert (PROJECT / target).is_file()


def test_playbook_dir_group_vars_is_the_top_level_group_vars():
    assert (PROJECT / "playbooks/group_vars").resolve() == (PROJECT / "group_vars").resolve()


# Ansible reads playbook group_vars beside the playbook it was started with; the roles read
# the shared paths (group_vars/all/paths.yml) from there, so every directory whose
# playbooks run the roles links to the top-level group_vars.
@pytest.mark.parametrize("directory", ["playbooks", "tests/playbooks",
                                       *sorted(str(p.parent.relative_to(PROJECT))
                                               for p in PROJECT.glob("molecule/*/converge.yml"))])
def test_directories_of_playbooks_that_run_roles_see_the_shared_paths(directory):
    assert (PROJECT / directory / "group_vars").resolve() == (PROJECT / "group_vars").resolve()


@pytest.mark.parametrize("env", INVENTORIES)
def test_cross_environment_defaults_reach_every_host_of_every_inventory(env):
    defaults = {}
    for f in sorted((PROJECT / "group_vars/all").glob("*.yml")):
        defaults.update(load_yaml(f) or {})
    assert defaults, "group_vars/all holds no defaults"
    hostvars = inventory_hostvars(env)["_meta"]["hostvars"]
    assert hostvars, f"inventory {env} has no hosts"
    for host, hvars in hostvars.items():
        for key in defaults:
            assert key in hvars, f"{env}/{host} does not see {key} from group_vars/all"


@pytest.mark.parametrize("env", INVENTORIES)
def test_inventory_all_vars_do_not_silently_lose_to_group_vars(env):
    # playbook group_vars/all outrank an inventory's group_vars/all: a key set in both
    # would be ignored in the inventory without a word. Environments set such keys in
    # their own top group instead.
    top = set()
    for f in (PROJECT / "group_vars/all").glob("*.yml"):
        top |= set(load_yaml(f) or {})
    inv_all = PROJECT / "inventories" / env / "group_vars"
    for f in list(inv_all.glob("all.yml")) + list(inv_all.glob("all/*.yml")):
        clash = top & set(load_yaml(f) or {})
        assert not clash, f"{f} sets {clash}, which group_vars/all overrides"


@pytest.mark.parametrize("env", INVENTORIES)
def test_every_host_belongs_to_the_environment_group(env):
    inventory = inventory_hostvars(env)
    hosts = set(inventory["_meta"]["hostvars"])

    def members(group):
        g = inventory.get(group, {})
        found = set(g.get("hosts", []))
        for child in g.get("children", []):
            found |= members(child)
        return found

    assert members(env) == hosts


@pytest.mark.parametrize(("name", "extra"), [
    ("deploy.yml", ["-e", "app_version=1.0; reboot"]),
    ("rollback.yml", ["-e", "app_version=../1.0"]),
])
def test_deploy_and_rollback_refuse_bad_versions_before_touching_a_host(name, extra, tmp_path):
    # The host below does not exist: the run must stop at input validation, which needs
    # no connection, with a message that says what is wrong.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    web:\n      hosts:\n        nosuchhost.invalid:\n"
                         "          webapp_apps: [{name: app, wsgi: app.wsgi, server_names: [app.test]}]\n")
    result = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), name, *extra], cwd=PROJECT,
                            text=True, capture_output=True, check=False)
    assert result.returncode != 0
    assert "app_version must be a release version" in " ".join(result.stdout.split()), result.stdout[-2000:]
    assert "unreachable=0" in result.stdout


def test_no_private_key_is_tracked():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True)
    for name in filter(None, tracked.stdout.decode().split("\0")):
        path = PROJECT / name
        if path.is_file() and not path.is_symlink():
            assert b"-----BEGIN OPENSSH " + b"PRIVATE KEY" not in path.read_bytes(), name


SANDBOX_INVENTORIES = [PROJECT / "inventories/sandbox", PROJECT / "bench/inventory"] + sorted(PROJECT.glob("molecule/*/inventory"))


def sandbox_hostvars(inv):
    out = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(inv), "--list"], cwd=PROJECT,
                         text=True, capture_output=True, check=True)
    return json.loads(out.stdout)["_meta"]["hostvars"]


def loopback_ports(host, hvars):
    """The controller's loopback ports a sandbox host takes: its sshd (ansible_port) and
    every HOSTPORT of sandbox_publish ("HOSTPORT:CONTAINERPORT", see tests/sandbox/create.yml)."""
    published = hvars.get("sandbox_publish", [])
    assert isinstance(published, list), f"{host}: sandbox_publish must be a list"
    for entry in published:
        assert re.fullmatch(r"\d+:\d+", str(entry)), f"{host}: sandbox_publish entry {entry!r} is not HOSTPORT:CONTAINERPORT"
    return [int(hvars["ansible_port"])] + [int(str(entry).split(":")[0]) for entry in published]


def test_sandbox_hosts_have_unique_names_and_ports():
    # The demo and every Molecule scenario may have hosts up at the same time (podman
    # container names and loopback ports are machine-wide): SSH and published ports.
    seen_names, seen_ports = {}, {}
    for inv in SANDBOX_INVENTORIES:
        for host, hvars in sandbox_hostvars(inv).items():
            assert host not in seen_names, f"{host} in {inv} and {seen_names.get(host)}"
            seen_names[host] = inv
            for port in loopback_ports(host, hvars):
                assert port not in seen_ports, f"port {port} of {host} ({inv}) also used by {seen_ports.get(port)}"
                seen_ports[port] = host


def test_sandbox_publish_index_urls_use_a_published_port():
    # release.yml reaches a sandbox index from the controller through a published port.
    for inv in SANDBOX_INVENTORIES:
        for host, hvars in sandbox_hostvars(inv).items():
            if "publish_index_url" in hvars:
                match = re.fullmatch(r"(https?)://(?:127\.0\.0\.1|localhost):(\d+)/?", hvars["publish_index_url"])
                assert match, f"{host} ({inv}): publish_index_url must be http(s)://127.0.0.1 or localhost:<published port>"
                assert int(match[2]) in loopback_ports(host, hvars)[1:], f"{host} ({inv}) does not publish {match[2]}"
                # HTTPS goes to nginx's 443 on a host with a certificate of the sandbox's CA,
                # plain HTTP to devpi's own port
                inner = {p.split(":")[0]: p.split(":")[1] for p in hvars.get("sandbox_publish", [])}[match[2]]
                assert (match[1], inner) in [("https", "443"), ("http", str(hvars.get("devpi_port", 3141)))], \
                    f"{host} ({inv}): {hvars['publish_index_url']} is published to port {inner}"
                assert match[1] == "http" or hvars.get("sandbox_tls") is True, f"{host} ({inv}) needs sandbox_tls"
