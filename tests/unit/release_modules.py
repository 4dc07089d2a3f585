"""Load the release role's modules (roles/release/library) as plain Python, with the role's
module_utils where Ansible would put them, so that their logic is tested without a host."""

import importlib.util
import sys

from sandbox_support import PROJECT

ROLE = PROJECT / "roles/release"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(name):
    """roles/release/library/<name>.py as a module."""
    for path in sorted((ROLE / "module_utils").glob("*.py")):
        sys.modules.setdefault(f"ansible.module_utils.{path.stem}", _load(f"ansible.module_utils.{path.stem}", path))
    return _load(name, ROLE / "library" / f"{name}.py")
