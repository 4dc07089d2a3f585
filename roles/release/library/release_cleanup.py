#!/usr/bin/python
"""Ansible module of the release role: remove the releases an app no longer keeps."""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_tree import append_line

DOCUMENTATION = r"""
module: release_cleanup
short_description: Remove an app's releases beyond the number it keeps, by when they last served
description:
  - Keeps the releases in O(protect) (the release just switched to and the one that served
    before it), then the most recently used ones, up to O(keep) in all, and removes every
    other directory under O(releases), unfinished builds included.
  - I(Most recently used) comes from the deploy log (O(log), one line per deploy or
    rollback, C(version=) and C(result=ok) fields), not from modification times, which lie
    after a rollback.
  - O(record), if given, is appended to the log first: the line of the deploy or rollback
    that just succeeded, which the choice then counts.
  - In check mode, reports what it would remove and removes nothing; with --diff, the
    releases before and after.
options:
  releases: {description: The app's releases directory., type: path, required: true}
  log: {description: The app's deploy log., type: path, required: true}
  keep: {description: How many releases to keep (at least the protected ones)., type: int, required: true}
  protect: {description: Versions kept whatever happens, in order of importance., type: list, elements: str, default: []}
  record: {description: A line to append to O(log) first., type: str, default: ''}
"""

RETURN = r"""
kept: {description: The releases kept, the most important first., type: list}
removed: {description: The releases removed (or, in check mode, that would be), sorted., type: list}
"""


def used_versions(log_text):
    """The versions switched to successfully, the most recent first, each once."""
    seen = []
    for line in reversed(log_text.splitlines()):
        fields = dict(f.split("=", 1) for f in line.split("\t")[1:] if "=" in f)
        version = fields.get("version")
        if fields.get("result") == "ok" and version and version not in seen:
            seen.append(version)
    return seen


def to_keep(protect, used, keep):
    """The releases to keep: the protected ones, then the most recently used up to `keep`."""
    kept = []
    for version in protect:
        if version and version not in kept:
            kept.append(version)
    for version in used:
        if len(kept) >= keep:
            break
        if version not in kept:
            kept.append(version)
    return kept


def plan(releases, log, keep, protect):
    """(kept, removed): what to keep of the directories under `releases`, and the rest."""
    try:
        with open(log, encoding="utf-8") as f:
            used = used_versions(f.read())
    except FileNotFoundError:
        used = []
    # Release directories only: not a stray file, a link, or a hidden name (not ours).
    on_disk = sorted(n for n in os.listdir(releases) if not n.startswith(".")
                     and os.path.isdir(os.path.join(releases, n)) and not os.path.islink(os.path.join(releases, n)))
    kept = [v for v in to_keep(protect, used, keep) if v in on_disk]
    return kept, [n for n in on_disk if n not in kept]


def main():
    module = AnsibleModule(
        argument_spec={
            "releases": {"type": "path", "required": True},
            "log": {"type": "path", "required": True},
            "keep": {"type": "int", "required": True},
            "protect": {"type": "list", "elements": "str", "default": []},
            "record": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["keep"] < 1:
        module.fail_json(msg=f"keep must be 1 or more, got {p['keep']}")
    if p["record"] and not module.check_mode:
        append_line(p["log"], p["record"])
    kept, removed = plan(p["releases"], p["log"], p["keep"], p["protect"])
    if not module.check_mode:
        for name in removed:
            shutil.rmtree(os.path.join(p["releases"], name))
    result = {"changed": bool(removed or p["record"]), "kept": kept, "removed": removed}
    if module._diff:
        result["diff"] = {"before": "\n".join(sorted(kept + removed)) + "\n", "after": "\n".join(sorted(kept)) + "\n",
                          "before_header": p["releases"], "after_header": p["releases"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
