"""Shared by the release role's modules: the fault-injection hook (release_fault_hold).

A fault test names a hold point; the module that reaches it writes its pid into
<hold_dir>/<point> and waits. The test then acts on a deploy stopped at a known step:
it kills the module (and ansible-playbook), as a crash there would, or does something
(stops the index, starts a second deploy) and removes the file, and the module goes on.
A hold that nobody ends within `timeout` seconds ends as a crash would: the process exits
at once, doing nothing more. With no point named (production), nothing happens.
"""

import os
import time

# The points, in the order a deploy reaches them (docs: roles/release/README.md).
POINTS = ("locked", "venv", "canary", "links", "switched", "rollout")


def hold(point, wanted, hold_dir, timeout=600, sleep=time.sleep, clock=time.monotonic, exit_=os._exit):
    """Hold at `point` if it is the one `wanted`; returns once the hold file is removed."""
    if not wanted or wanted != point:
        return False
    os.makedirs(hold_dir, mode=0o700, exist_ok=True)
    path = os.path.join(hold_dir, point)
    with open(path + ".tmp", "w", encoding="ascii") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(path + ".tmp", path)
    deadline = clock() + timeout
    while os.path.exists(path):
        if clock() >= deadline:
            os.unlink(path)
            exit_(75)
            return True  # only reached when exit_ is replaced (unit tests)
        sleep(0.1)
    return True
