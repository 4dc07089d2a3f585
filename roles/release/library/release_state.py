#!/usr/bin/python
"""Ansible module of the release role: read an app's release state in one round trip."""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_tree import link_target, releases
from ansible.module_utils.release_units import RUNNING, unit_state

DOCUMENTATION = r"""
module: release_state
short_description: Read an app's releases, its current and previous links and its deploy lock
description:
  - Reads, and never changes, the app's home as the release role lays it out
    (C(<home>/releases/<version>), the C(current) and C(previous) symlinks, the deploy lock
    C(<home>/.deploy.lock/holder.json)).
  - A release is complete once its O(marker) file exists; any other directory under
    C(releases/) is an unfinished build, never switched to.
  - O(required) lists directories the app must have (its tree, the readiness directory):
    those missing or not directories are returned in C(missing), for the caller to refuse.
options:
  home: {description: The app's home (<root>/<app>)., type: path, required: true}
  marker: {description: File name that marks a complete release., type: str, required: true}
  required: {description: Directories that must exist., type: list, elements: path, default: []}
  canary_unit: {description: The app's canary unit; whether it runs is returned in C(canary_running)., type: str}
"""

RETURN = r"""
current: {description: The version C(current) names; empty if none., type: str}
previous: {description: The version C(previous) names; empty if none., type: str}
complete: {description: Complete releases on disk, sorted by name., type: list}
unfinished: {description: Other directories under releases/, sorted., type: list}
missing: {description: The required directories that are missing or not directories., type: list}
lock: {description: The deploy lock's holder (a mapping, empty when it names none); null when there is no lock., type: dict}
canary_running: {description: Whether O(canary_unit) runs (a canary left by a killed run, or another run's)., type: bool}
"""


def lock_holder(lock):
    """None without a lock; the holder file's mapping, or {} when it names no holder."""
    if not os.path.isdir(lock):
        return None
    try:
        with open(os.path.join(lock, "holder.json"), encoding="utf-8") as f:
            holder = json.load(f)
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def state(home, marker, required=()):
    complete, unfinished = releases(os.path.join(home, "releases"), marker)
    return {
        "current": link_target(os.path.join(home, "current")),
        "previous": link_target(os.path.join(home, "previous")),
        "complete": complete,
        "unfinished": unfinished,
        "missing": [p for p in required if not os.path.isdir(p)],
        "lock": lock_holder(os.path.join(home, ".deploy.lock")),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "home": {"type": "path", "required": True},
            "marker": {"type": "str", "required": True},
            "required": {"type": "list", "elements": "path", "default": []},
            "canary_unit": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    module.exit_json(changed=False, canary_running=bool(p["canary_unit"]) and unit_state(p["canary_unit"]) in RUNNING,
                     **state(p["home"], p["marker"], p["required"]))


if __name__ == "__main__":
    main()
