"""Every role follows the project's conventions (see CONTRIBUTING in docs/)."""

import re
from pathlib import Path

import pytest
import yaml
from sandbox_support import PROJECT

ROLES = sorted(p.name for p in (PROJECT / "roles").iterdir() if p.is_dir())


def load(path):
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


@pytest.mark.parametrize("role", ROLES)
def test_defaults_are_prefixed_and_match_the_argument_spec(role):
    defaults = load(PROJECT / "roles" / role / "defaults/main.yml")
    spec = load(PROJECT / "roles" / role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name in defaults:
        assert name.startswith(role + "_"), f"{role}: default {name} lacks the role prefix"
    assert set(defaults) == set(spec), f"{role}: defaults and argument_specs differ"
    for name, value in defaults.items():
        assert spec[name].get("default") == value, f"{role}: {name} default differs from its spec"


@pytest.mark.parametrize("role", ROLES)
def test_templates_carry_the_ansible_managed_header(role):
    for template in (PROJECT / "roles" / role / "templates").rglob("*.j2"):
        lines = template.read_text(encoding="utf-8").splitlines()
        # A script's shebang must stay its first line: the header follows it.
        first = lines[1] if lines[0].startswith("#!") else lines[0]
        assert re.search(r"ansible_managed\s*\|\s*comment", first), template


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme(role):
    readme = PROJECT / "roles" / role / "README.md"
    assert readme.is_file()
    text = readme.read_text(encoding="utf-8")
    defaults = load(PROJECT / "roles" / role / "defaults/main.yml")
    for name in defaults:
        assert name in text, f"{role}/README.md does not document {name}"
