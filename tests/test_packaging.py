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
