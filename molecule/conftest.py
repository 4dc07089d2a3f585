"""Fixtures shared by the Molecule scenarios' testinfra tests (helpers: tests/sandbox_support.py)."""

from pathlib import Path

import pytest


@pytest.fixture(name="scenario_dir", scope="module")
def fixture_scenario_dir(request):
    """The directory of the scenario whose tests are running."""
    return Path(request.node.path).resolve().parent.parent
