#!/usr/bin/python
"""Ansible module of the release role: point an app's previous and current links at releases."""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_hold import hold
from ansible.module_utils.release_tree import append_line, link_target

DOCUMENTATION = r"""
module: release_switch
short_description: Point an app's release links (previous, current) at releases, each atomically, then log it
description:
  - Sets each link of O(links), in the order given, to C(releases/<release>) under O(home).
    Each is a new symlink under a temporary name renamed over the old one. rename(2) is
    atomic, so at every instant the link names a complete release, never nothing.
  - The order is the caller's safety rule. A deploy renames C(previous) before C(current);
    a run killed between the two then leaves both naming the same release. It never leaves
    C(current) moved on with C(previous) one further back, which would make a rollback skip
    the release that served last.
  - A link that already names its release is left alone. A release that is not a directory
    under C(releases/) is refused before any link changes.
  - O(record), if given, is then appended to the deploy log O(log) as one line. Without
    O(links), the module only logs (a failed deploy's line).
  - Check mode reports what would change; --diff shows the links before and after.
options:
  home: {description: The app's home (<root>/<app>)., type: path, required: true}
  links:
    description: The links to set, in order, each C({name, release}); C(name) is current or previous.
    type: list
    elements: dict
    default: []
  log: {description: The app's deploy log (for O(record))., type: path}
  record: {description: A line to append to O(log) after the links., type: str, default: ''}
  hold: {description: Fault tests only (release_fault_hold). C(links) holds between two links; C(switched) after all., type: str, default: ''}
  hold_dir: {description: Where a hold writes its file., type: path, default: /run/webdeploy-hold}
"""

RETURN = r"""
before: {description: What each link of O(links) named before (its version; empty for none)., type: dict}
after: {description: What each names now., type: dict}
"""

NAMES = ("current", "previous")


def errors(home, links):
    """Every reason to refuse `links`, before any of them changes."""
    found = []
    for link in links:
        name, release = link.get("name"), str(link.get("release") or "")
        if name not in NAMES:
            found.append(f"link name must be one of {', '.join(NAMES)}, got {name!r}")
        if not release or "/" in release or release in (".", "..") or release.startswith("."):
            found.append(f"{name} cannot point at {release!r}: not a release name")
        elif not os.path.isdir(os.path.join(home, "releases", release)):
            found.append(f"{name} cannot point at {release}: {os.path.join(home, 'releases', release)} is not a directory")
    return found


def set_link(home, name, release):
    """Point home/name at releases/<release>: a temporary symlink renamed over it."""
    tmp = os.path.join(home, f".{name}.tmp")
    try:
        os.unlink(tmp)  # left by a run killed between the two steps
    except FileNotFoundError:
        pass
    os.symlink(os.path.join("releases", release), tmp)
    os.rename(tmp, os.path.join(home, name))


def switch(home, links, check_mode=False, hold_point="", hold_dir="/run/webdeploy-hold"):
    """(changed, before, after), after setting `links` in order (none in check mode)."""
    before = {link["name"]: link_target(os.path.join(home, link["name"])) for link in links}
    after = dict(before)
    changed = False
    todo = [link for link in links if link_target(os.path.join(home, link["name"])) != link["release"]]
    for index, link in enumerate(todo):
        if not check_mode:
            set_link(home, link["name"], link["release"])
            if index < len(todo) - 1:
                hold("links", hold_point, hold_dir)
        after[link["name"]] = link["release"]
        changed = True
    if todo and not check_mode:
        hold("switched", hold_point, hold_dir)
    return changed, before, after


def main():
    module = AnsibleModule(
        argument_spec={
            "home": {"type": "path", "required": True},
            "links": {"type": "list", "elements": "dict", "default": []},
            "log": {"type": "path"},
            "record": {"type": "str", "default": ""},
            "hold": {"type": "str", "default": ""},
            "hold_dir": {"type": "path", "default": "/run/webdeploy-hold"},
        },
        supports_check_mode=True,
    )
    p = module.params
    refused = errors(p["home"], p["links"])
    if p["record"] and not p["log"]:
        refused.append("record needs log, the deploy log's path")
    if refused:
        module.fail_json(msg="Refusing to switch: " + "; ".join(refused) + ".")
    changed, before, after = switch(p["home"], p["links"], module.check_mode, p["hold"], p["hold_dir"])
    if p["record"]:
        if not module.check_mode:
            append_line(p["log"], p["record"])
        changed = True
    result = {"changed": changed, "before": before, "after": after}
    if module._diff:
        result["diff"] = {
            "before": "".join(f"{n} -> {before[n] or '(none)'}\n" for n in before),
            "after": "".join(f"{n} -> {after[n] or '(none)'}\n" for n in after),
            "before_header": p["home"], "after_header": p["home"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
