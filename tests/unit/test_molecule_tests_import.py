"""Every Molecule scenario's test module imports: a helper renamed or dropped from
tests/sandbox_support.py (or a scenario's own support module) fails here, in seconds,
rather than in that scenario's verify step after its hosts were built."""

import importlib.util
import sys

import pytest
from sandbox_support import PROJECT

MODULES = sorted(PROJECT.glob("molecule/*/tests/*.py"))


def test_there_are_scenario_tests():
    assert len(MODULES) >= 7, MODULES


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PROJECT)) for p in MODULES])
def test_a_scenario_test_module_imports(path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))
    name = f"scenario_{path.parent.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
