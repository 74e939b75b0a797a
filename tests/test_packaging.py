"""A non-editable install ships the SQL files and the default model inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_sql_and_the_shipped_models(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("finprint-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "catalog/sql/migrations/001_initial.sql" in names
    assert "catalog/sql/queries/history.sql" in names
    assert "catalog/models/default.onnx" in names
    # The learned keypoint network: `--detector xfeat` describes offline from the wheel.
    assert "catalog/models/xfeat.onnx" in names
    assert "exporters/tabular.py" in names
    assert not any(name.startswith("tests/") for name in names)


@pytest.mark.slow
def test_the_command_line_starts_with_the_oldest_typer_pyproject_allows(tmp_path: Path) -> None:
    """pyproject allows typer 0.12 and later; before 0.26 typer has no `typer._click` of its own."""
    old = tmp_path / "old-typer"
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(old),
         "typer==0.12.5", "click==8.1.7"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if fetched.returncode != 0:
        pytest.skip(f"typer 0.12.5 could not be fetched from the package registry: {fetched.stderr[-300:]}")
    env = {"PYTHONPATH": f"{old}:{REPO}", "PATH": "/usr/bin:/bin"}
    started = subprocess.run(
        [sys.executable, "-c", "import typer; from catalog.cli import main; print(typer.__version__); main()",
         "--help"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    assert started.stdout.startswith("0.12.5") and "index" in started.stdout
    bad = subprocess.run(
        [sys.executable, "-c", "from catalog.cli import main; main()", "index", "--no-such-option"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert bad.returncode == 64, bad.stderr[-2000:]
