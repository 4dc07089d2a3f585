"""Shared by the release role's modules: the state of a systemd unit (the canary's)."""

import subprocess

# States in which a unit still has (or is about to have) processes.
RUNNING = ("active", "activating", "deactivating", "reloading")


def unit_state(unit):
    """systemd's ActiveState of `unit`; "inactive" when systemd does not know it."""
    result = subprocess.run(["systemctl", "show", "--property=ActiveState", "--value", unit],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or "inactive"
