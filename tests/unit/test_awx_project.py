"""The repository as an AWX project: the playbooks AWX lists, the collections it installs
on a project sync, the inventory it sources from the project, the execution environment.
"""

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sandbox_support import PROJECT

COLLECTIONS = Path(yaml.__file__).resolve().parent.parent / "ansible_collections"
ANSIBLE_BUILDER = Path(sys.executable).parent / "ansible-builder"
# AWX's own test of what is a playbook (awx/main/utils/ansible.py): a line that starts
# with hosts:, include: or import_playbook: (not ansible.builtin.import_playbook:).
AWX_PLAYBOOK_LINE = re.compile(r"^\s*?-?\s*?(?:hosts|include|import_playbook):\s*?.*?$")
FQCN = re.compile(r"\b([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*\b")


def load_yaml(path):
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def pins():
    """{lowercase package name: version} of requirements.txt."""
    lines = (PROJECT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return dict(line.lower().split("==", 1) for line in lines if "==" in line and not line.startswith("#"))


@functools.cache
def awx_playbooks():
    """The playbooks AWX offers for a job template of this project, as AWX finds them."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(PROJECT):
        rel = Path(dirpath).relative_to(PROJECT)
        parts = rel.parts
        # AWX's skip_directory: roles, tasks, group_vars, host_vars and dot directories.
        if {"roles", "tasks", "group_vars", "host_vars"} & set(parts) or any(p.startswith(".") for p in parts):
            dirnames[:] = []
            continue
        for name in filenames:
            path = Path(dirpath) / name
            if path.suffix in (".yml", ".yaml") and any(
                    AWX_PLAYBOOK_LINE.match(line) for line in path.read_text(encoding="utf-8", errors="ignore").splitlines()):
                found.add(str(rel / name))
    return found


def job_template_playbooks():
    plays = load_yaml(PROJECT / "awx/configure.yml")
    return {task["awx.awx.job_template"]["name"]: task["awx.awx.job_template"]["playbook"]
            for play in plays for task in play["tasks"] if "awx.awx.job_template" in task}


def test_ansible_cfg_is_at_the_project_root():
    assert (PROJECT / "ansible.cfg").is_file()


@pytest.mark.parametrize("template", sorted(job_template_playbooks()))
def test_job_template_playbook_is_one_awx_lists(template):
    assert job_template_playbooks()[template] in awx_playbooks()


def test_collections_are_pinned_to_the_versions_the_ansible_package_bundles():
    wanted = load_yaml(PROJECT / "collections/requirements.yml")["collections"]
    assert wanted
    for entry in wanted:
        namespace, name = entry["name"].split(".")
        manifest = json.loads((COLLECTIONS / namespace / name / "MANIFEST.json").read_text(encoding="utf-8"))
        assert entry["version"] == manifest["collection_info"]["version"], entry


def test_collections_cover_what_the_playbooks_and_awx_use():
    listed = {entry["name"] for entry in load_yaml(PROJECT / "collections/requirements.yml")["collections"]}
    used = set()
    for top in ("playbooks", "roles", "awx", "group_vars"):
        for path in (PROJECT / top).rglob("*"):
            if path.suffix in (".yml", ".yaml", ".j2") and path.is_file():
                # Only names of installed collections: not awx.example.com in a comment.
                used |= {m for m in FQCN.findall(path.read_text(encoding="utf-8"))
                         if (COLLECTIONS / m.replace(".", "/")).is_dir()}
    used.discard("ansible.builtin")
    assert used <= listed, f"used but not in collections/requirements.yml: {used - listed}"


def test_prod_inventory_can_be_sourced_from_the_project():
    inventory = PROJECT / "inventories/prod"
    assert (inventory / "hosts.yml").is_file()
    assert (inventory / "group_vars").is_dir()


@pytest.mark.parametrize("env", ["prod", "staging", "sandbox"])
def test_no_inventory_file_is_encrypted_whole(env):
    # An inventory sync runs without the vault password: single !vault values are
    # imported still encrypted and decrypted when a job runs, a whole encrypted file
    # makes the sync fail.
    for path in (PROJECT / "inventories" / env).rglob("*.yml"):
        assert not path.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT"), path


@pytest.mark.parametrize("env", ["prod", "staging"])
def test_inventory_leaves_the_login_to_the_machine_credential(env):
    # An inventory's ansible_user silently overrides the username of AWX's credential.
    for path in (PROJECT / "inventories" / env).rglob("*.yml"):
        assert "ansible_user" not in (load_yaml(path) or {}), path


def test_execution_environment_pins_agree_with_the_lock():
    ee = load_yaml(PROJECT / "execution-environment.yml")
    lock = pins()
    assert ee["version"] == 3
    assert ee["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={lock['ansible-core']}"
    assert ee["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={lock['ansible-runner']}"
    assert (PROJECT / ee["dependencies"]["galaxy"]).resolve() == PROJECT / "collections/requirements.yml"
    for requirement in ee["dependencies"]["python"]:
        name, version = requirement.lower().split("==")
        assert lock.get(name) == version, requirement


def test_ansible_builder_accepts_the_execution_environment(tmp_path):
    context = tmp_path / "context"
    result = subprocess.run(
        [str(ANSIBLE_BUILDER), "create", "--file", "execution-environment.yml", "--context", str(context)],
        cwd=PROJECT, text=True, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    assert f"ansible-core=={pins()['ansible-core']}" in containerfile
    assert load_yaml(context / "_build/requirements.yml") == load_yaml(PROJECT / "collections/requirements.yml")
