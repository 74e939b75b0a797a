"""The fast lane (`just test-fast`) needs only what `pip install '.[dev]'` installs."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"catalog", "exporters", "tests", "bench"}


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _imported_modules(path: Path) -> set[str]:
    """Top-level modules a file imports anywhere (inside functions too)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def test_every_module_the_fast_lane_imports_comes_with_the_runtime_or_the_dev_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    allowed = _requirement_names(project["dependencies"] + project["optional-dependencies"]["dev"])
    distributions = packages_distributions()
    fast_lane = sorted((REPO / "tests").glob("*.py"))  # tests/train is left out of the lane
    missing: dict[str, list[str]] = {}
    for path in fast_lane:
        for module in _imported_modules(path) - FIRST_PARTY - set(sys.stdlib_module_names):
            names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            if not names & allowed:
                missing.setdefault(module, []).append(path.name)
    assert not missing, f"imported by fast-lane tests, installed by neither the runtime nor [dev]: {missing}"
