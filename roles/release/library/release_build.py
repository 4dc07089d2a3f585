#!/usr/bin/python
"""Ansible module of the release role: the release directory's own steps around the hooks."""

import os
import pwd

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: release_build
short_description: Give the app's hooks a static directory in a release, then hand it back to root and mark the release complete
description:
  - C(state=prepared) makes C(<release>/static) owned by O(owner) (mode 0755), for the hooks
    that run as the app's user (collectstatic writes there).
  - C(state=complete) hands C(<release>/static) and everything in it back to root (the app
    only ever writes to shared/), then writes O(content) into O(marker) under a temporary
    name renamed into place. From then on the release counts as complete.
  - One round trip each, in place of a file and a copy task. Check mode reports
    and changes nothing.
options:
  release: {description: The release directory (<home>/releases/<version>)., type: path, required: true}
  state: {description: prepared or complete., type: str, choices: [prepared, complete], required: true}
  owner: {description: The app's user (state=prepared)., type: str}
  marker: {description: The marker's file name (state=complete)., type: str, default: .webdeploy-release-complete}
  content: {description: What the marker says (version, when, by whom)., type: str, default: ''}
"""

RETURN = r"""
changed_paths: {description: How many paths changed owner (and whether the marker was written)., type: int}
"""


def prepare(static, uid, gid):
    """Create static (0755) owned by uid:gid; whether anything changed."""
    changed = False
    if not os.path.isdir(static):
        os.mkdir(static, 0o755)
        changed = True
    st = os.lstat(static)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(static, uid, gid)
        changed = True
    if st.st_mode & 0o7777 != 0o755:
        os.chmod(static, 0o755)
        changed = True
    return changed


def hand_back(static, uid=0, gid=0):
    """chown -R root:root (uid:gid) static, never following a link; how many paths changed."""
    count = 0
    for top, dirs, files in os.walk(static):  # links to directories are listed, not entered
        names = files + [n for n in dirs if os.path.islink(os.path.join(top, n))]
        for path in [top] + [os.path.join(top, n) for n in names]:
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(path, uid, gid)
                count += 1
    return count


def mark(release, marker, content):
    path = os.path.join(release, marker)
    tmp = os.path.join(release, f".{marker}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(content)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec={
            "release": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["prepared", "complete"], "required": True},
            "owner": {"type": "str"},
            "marker": {"type": "str", "default": ".webdeploy-release-complete"},
            "content": {"type": "str", "default": ""},
        },
        required_if=[("state", "prepared", ("owner",))],
        supports_check_mode=True,
    )
    p = module.params
    static = os.path.join(p["release"], "static")
    if not os.path.isdir(p["release"]):
        module.fail_json(msg=f"{p['release']} is not a directory: no release to build there.")
    if module.check_mode:
        module.exit_json(changed=True, changed_paths=0)
    if p["state"] == "prepared":
        try:
            user = pwd.getpwnam(p["owner"])
        except KeyError:
            module.fail_json(msg=f"No user {p['owner']} on this host: provision the app first (site.yml, role webapp).")
        changed = prepare(static, user.pw_uid, user.pw_gid)
        module.exit_json(changed=changed, changed_paths=int(changed))
    count = hand_back(static)
    mark(p["release"], p["marker"], p["content"])
    module.exit_json(changed=True, changed_paths=count + 1)


if __name__ == "__main__":
    main()
