#!/usr/bin/python
"""Ansible module of the release role: a deploy's outcome as Prometheus metrics, through
the node exporter's textfile collector."""

import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_tree import link_target

DOCUMENTATION = r"""
module: release_metrics
short_description: Write an app's release and last deploy as metrics for the node exporter's textfile collector
description:
  - Writes C(<dir>/webdeploy_release_<app>.prom), replacing the previous one. The new content
    goes to a hidden temporary file in the same directory, then is renamed over the old file,
    so the collector never reads half a file. The collector reads only C(*.prom) files.
  - C(webdeploy_release_info{app, version}) is 1 for the release that C(<home>/current) names
    after the run, whatever the run's outcome. A failed deploy that was rolled back
    therefore still reports the release that serves. The metric is missing when nothing is
    current.
  - C(webdeploy_last_deploy_success), C(_timestamp_seconds) and C(_duration_seconds) describe the
    run that just ended, labelled with O(action) and, for success, the O(target) version.
  - When O(dir) does not exist (no node exporter on the host), nothing is written and the
    module says so. A write that fails is a warning: a deploy never fails for its metrics.
options:
  dir: {description: The node exporter's textfile directory., type: path, required: true}
  home: {description: The app's home (<root>/<app>)., type: path, required: true}
  app: {description: The app's name., type: str, required: true}
  action: {description: What ran., type: str, choices: [deploy, rollback], required: true}
  target: {description: The version the run went for., type: str, required: true}
  success: {description: Whether the run succeeded., type: bool, required: true}
  started: {description: When the run started (Unix time, seconds)., type: float, required: true}
  finished: {description: When it ended (Unix time); now by default., type: float}
"""

RETURN = r"""
written: {description: The file written; empty when O(dir) does not exist., type: str}
serving: {description: The release that current names (empty for none)., type: str}
"""

HELP = {
    "webdeploy_release_info": "The release an app's current link names (always 1).",
    "webdeploy_last_deploy_success": "Whether the app's last deploy or rollback succeeded (1) or failed (0).",
    "webdeploy_last_deploy_timestamp_seconds": "When the app's last deploy or rollback ended, in Unix time.",
    "webdeploy_last_deploy_duration_seconds": "How long the app's last deploy or rollback took.",
}


def label_value(value):
    """A label value escaped as the Prometheus text format requires."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs):
    return "{" + ",".join(f'{k}="{label_value(v)}"' for k, v in pairs.items()) + "}"


def render(app, serving, action, target, success, started, finished):
    """The .prom file's text."""
    samples = {
        "webdeploy_release_info": [(labels(app=app, version=serving), 1)] if serving else [],
        "webdeploy_last_deploy_success": [(labels(app=app, action=action, version=target), int(bool(success)))],
        "webdeploy_last_deploy_timestamp_seconds": [(labels(app=app, action=action), round(finished, 3))],
        "webdeploy_last_deploy_duration_seconds": [(labels(app=app, action=action), round(max(0.0, finished - started), 3))],
    }
    lines = []
    for name, values in samples.items():
        if not values:
            continue
        lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        lines += [f"{name}{ls} {v}" for ls, v in values]
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    """`text` into `path` by a rename of a temporary file beside it (mode 0644)."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "home": {"type": "path", "required": True},
            "app": {"type": "str", "required": True},
            "action": {"type": "str", "required": True, "choices": ["deploy", "rollback"]},
            "target": {"type": "str", "required": True},
            "success": {"type": "bool", "required": True},
            "started": {"type": "float", "required": True},
            "finished": {"type": "float"},
        },
        supports_check_mode=True,
    )
    p = module.params
    serving = link_target(os.path.join(p["home"], "current"))
    if not os.path.isdir(p["dir"]):
        module.exit_json(changed=False, written="", serving=serving,
                         msg=f"{p['dir']} does not exist (no node exporter here): no metrics written")
    path = os.path.join(p["dir"], f"webdeploy_release_{p['app']}.prom")
    text = render(p["app"], serving, p["action"], p["target"], p["success"], p["started"],
                  p["finished"] if p["finished"] is not None else time.time())
    if not module.check_mode:
        try:
            write_atomically(path, text)
        except OSError as e:
            module.warn(f"Could not write the deploy's metrics to {path}: {e}")
            module.exit_json(changed=False, written="", serving=serving)
    # Bookkeeping, like the deploy log: reported as no change to what the host serves.
    module.exit_json(changed=False, written=path, serving=serving)


if __name__ == "__main__":
    main()
