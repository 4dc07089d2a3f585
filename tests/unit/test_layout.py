"""The repository's shape: thin entry points, inventories, cross-environment group_vars."""

import json
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


@pytest.mark.parametrize("name", ["deploy.yml", "rollback.yml"])
def test_unimplemented_entry_points_fail_without_changing_anything(name, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    result = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), name], cwd=PROJECT,
                            text=True, capture_output=True, check=False)
    assert result.returncode != 0
    assert "not implemented yet" in result.stdout
    assert "changed=0" in result.stdout


def test_no_private_key_is_tracked():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True)
    for name in filter(None, tracked.stdout.decode().split("\0")):
        path = PROJECT / name
        if path.is_file() and not path.is_symlink():
            assert b"-----BEGIN OPENSSH " + b"PRIVATE KEY" not in path.read_bytes(), name


def test_sandbox_hosts_have_unique_names_and_ports():
    # The demo and every Molecule scenario may have hosts up at the same time (podman
    # container names and loopback ports are machine-wide).
    inventories = [PROJECT / "inventories/sandbox"] + sorted(PROJECT.glob("molecule/*/inventory"))
    seen_names, seen_ports = {}, {}
    for inv in inventories:
        out = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(inv), "--list"], cwd=PROJECT,
                             text=True, capture_output=True, check=True)
        for host, hvars in json.loads(out.stdout)["_meta"]["hostvars"].items():
            port = hvars["ansible_port"]
            assert host not in seen_names, f"{host} in {inv} and {seen_names.get(host)}"
            assert port not in seen_ports, f"port {port} of {host} ({inv}) also used by {seen_ports.get(port)}"
            seen_names[host], seen_ports[port] = inv, host
