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


def run_module(module, args, check_mode=False, diff=False):
    """Run a loaded module's main() with `args` as Ansible would pass them; its result (the
    JSON it prints), with 'failed' set when it called fail_json."""
    import io
    import json
    from contextlib import redirect_stdout

    from ansible.module_utils import basic

    params = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": params}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    basic._PARSED_MODULE_ARGS = None
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            module.main()
    except SystemExit:
        pass
    finally:
        basic._ANSIBLE_ARGS = basic._ANSIBLE_PROFILE = basic._PARSED_MODULE_ARGS = None
    return json.loads(out.getvalue())
