#!/usr/bin/python
"""Ansible module of the release role: take an app's deploy lock, saying who holds it."""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_hold import hold
from ansible.module_utils.release_tree import releases

DOCUMENTATION = r"""
module: release_lock
short_description: Take an app's deploy lock (a directory) and write who holds it, atomically
description:
  - One deploy per app and host at a time. C(mkdir) is atomic, so of two runs one creates
    the lock directory O(path) and the other learns at once that it is held.
  - The winner writes O(holder) into C(<path>/holder.json) under a temporary name renamed
    into place, so a reader sees the whole holder or none.
  - The loser gets C(acquired=false), the holder the lock names (C({}) when it names none:
    a run killed between the two steps) and its age; the caller decides whether it is
    stale and says so. With O(break_lock), an existing lock is removed first (C(changed),
    the removed holder in C(broken)) and taken.
  - Once the lock is taken, the app's releases are read again under it (O(releases),
    O(marker)): another run may have finished or left one since the caller last looked.
  - O(state=absent) removes the lock (the end of a run).
  - The lock lives as long as a run: taking and dropping it is no change. Breaking one is,
    with --diff showing the holder removed and the new one.
  - Check mode reports whether the lock would be taken (or broken) and touches nothing.
options:
  path: {description: The lock directory., type: path, required: true}
  holder: {description: Who takes the lock (user, controller, pid, version, since, epoch)., type: dict, default: {}}
  break_lock: {description: Remove an existing lock first., type: bool, default: false}
  state: {description: C(present) takes the lock; C(absent) drops it., type: str, choices: [present, absent], default: present}
  releases: {description: The app's releases directory, read once the lock is taken., type: path}
  marker: {description: File name that marks a complete release., type: str, default: .complete}
  hold: {description: Fault tests only (release_fault_hold). C(locked) holds once the lock is taken., type: str, default: ''}
  hold_dir: {description: Where a hold writes its file., type: path, default: /run/webdeploy-hold}
"""

RETURN = r"""
acquired: {description: Whether this run holds the lock now., type: bool}
holder: {description: When not acquired, who holds it (empty when the lock names nobody)., type: dict}
age: {description: When not acquired, seconds since the holder took it (from its epoch); null if unknown., type: int}
broken: {description: With break_lock, the holder of the lock removed (null if there was none)., type: dict}
complete: {description: When acquired, the complete releases (with O(releases))., type: list}
unfinished: {description: When acquired, the other directories under O(releases)., type: list}
"""

HOLDER = "holder.json"


def read_holder(path):
    try:
        with open(os.path.join(path, HOLDER), encoding="utf-8") as f:
            holder = json.load(f)
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def write_holder(path, holder):
    tmp = os.path.join(path, f".{HOLDER}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(holder, indent=4, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, os.path.join(path, HOLDER))


def age(holder, now):
    try:
        return int(now - int(holder["epoch"]))
    except (KeyError, TypeError, ValueError):
        return None


def take(path, holder, break_lock=False, now=None, check_mode=False):
    """The module's result for state=present (in check mode: what would happen)."""
    now = time.time() if now is None else now
    broken = None
    if break_lock and os.path.isdir(path):
        broken = read_holder(path)
        if not check_mode:
            shutil.rmtree(path)
    if check_mode and broken is None and os.path.isdir(path):
        other = read_holder(path)
        return {"changed": False, "acquired": False, "holder": other, "age": age(other, now), "broken": None}
    if check_mode:
        return {"changed": broken is not None, "acquired": True, "holder": holder, "age": 0, "broken": broken}
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        other = read_holder(path)
        return {"changed": broken is not None, "acquired": False, "holder": other, "age": age(other, now),
                "broken": broken}
    write_holder(path, holder)
    return {"changed": broken is not None, "acquired": True, "holder": holder, "age": 0, "broken": broken}


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "holder": {"type": "dict", "default": {}},
            "break_lock": {"type": "bool", "default": False},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "releases": {"type": "path"},
            "marker": {"type": "str", "default": ".complete"},
            "hold": {"type": "str", "default": ""},
            "hold_dir": {"type": "path", "default": "/run/webdeploy-hold"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "absent":
        if not module.check_mode:
            shutil.rmtree(p["path"], ignore_errors=True)
        module.exit_json(changed=False, acquired=False, holder={}, age=None, broken=None)
    try:
        result = take(p["path"], p["holder"], p["break_lock"], check_mode=module.check_mode)
    except OSError as e:
        module.fail_json(msg=f"Cannot take the deploy lock {p['path']}: {e.strerror}.")
    if result["acquired"]:
        if p["releases"]:
            result["complete"], result["unfinished"] = releases(p["releases"], p["marker"])
        if not module.check_mode:
            hold("locked", p["hold"], p["hold_dir"])
    if module._diff and result["changed"]:
        result["diff"] = {"before": json.dumps(result["broken"], indent=4, sort_keys=True) + "\n",
                          "after": json.dumps(p["holder"], indent=4, sort_keys=True) + "\n",
                          "before_header": f"{p['path']} (broken)", "after_header": p["path"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
