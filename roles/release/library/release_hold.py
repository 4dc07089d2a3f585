#!/usr/bin/python
"""Ansible module of the release role: a fault-injection hold point between two tasks."""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_hold import POINTS, hold

DOCUMENTATION = r"""
module: release_hold
short_description: For fault tests, stop a deploy at a named point until the test lets it go on or kills it
description:
  - The release role's hold points (variable C(release_fault_hold), README) for the steps that
    are tasks rather than modules. When O(wanted) is O(point), writes the module's pid into
    C(<hold_dir>/<point>) and waits until that file is removed (the run goes on) or the test
    kills the process (as a crash there would). Otherwise returns at once, changing nothing.
options:
  point: {description: This hold point's name., type: str, required: true}
  wanted: {description: The point a fault test asked for (release_fault_hold)., type: str, default: ''}
  hold_dir: {description: Where a hold writes its file., type: path, default: /run/webdeploy-hold}
"""

RETURN = r"""
held: {description: Whether the run was held here., type: bool}
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "point": {"type": "str", "required": True, "choices": list(POINTS)},
            "wanted": {"type": "str", "default": ""},
            "hold_dir": {"type": "path", "default": "/run/webdeploy-hold"},
        },
        supports_check_mode=True,
    )
    p = module.params
    held = False if module.check_mode else hold(p["point"], p["wanted"], p["hold_dir"])
    module.exit_json(changed=False, held=held)


if __name__ == "__main__":
    main()
