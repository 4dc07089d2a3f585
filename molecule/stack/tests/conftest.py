"""Fixtures of the stack scenario's test modules; helpers: stack_support.py."""

import pytest
import testinfra
from stack_support import LOAD_REPORT, WEB


@pytest.fixture(name="web", scope="module")
def fixture_web(scenario_dir):
    """{name: testinfra host} of the web hosts, in rollout order."""
    return {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={scenario_dir}/inventory") for name in WEB}


def pytest_terminal_summary(terminalreporter):
    """The requests sent and failed through nginx during each case (stack_support.load)."""
    if not LOAD_REPORT:
        return
    terminalreporter.section("requests through nginx during each case")
    for case, counts in LOAD_REPORT:
        for host, c in counts.items():
            errors = ", ".join(f"{k} x{v}" for k, v in sorted(c["errors"].items())) or "-"
            versions = ", ".join(f"{k} x{v}" for k, v in sorted(c["versions"].items())) or "-"
            terminalreporter.write_line(f"{case} | {host} | sent {c['ok'] + c['failed']} | failed {c['failed']}"
                                        f" ({errors}) | answered by {versions}")
