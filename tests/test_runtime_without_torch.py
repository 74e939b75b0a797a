"""The nightly path never imports torch, nor the offline package: a station laptop has only the
runtime dependencies, and the cron job loads only what a night needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _nightly_commands(folder: Path, tmp_path: Path, *, block: str, check: str) -> None:
    """Run the night's commands in a fresh interpreter, `block` run before them and `check`
    after; the script prints "ok" only when every command succeeded and `check` held."""
    commands = textwrap.dedent(
        f"""
        from typer.testing import CliRunner
        from catalog.cli import app
        runner = CliRunner()
        db = {str(tmp_path / "c.duckdb")!r}
        for args in (["index", {str(folder)!r}, "--db", db, "--quiet"],
                     ["history", "FP-000001", "--db", db],
                     ["report", "--db", db],
                     ["review", "--db", db],
                     ["export", "csv", "--db", db, "--out", {str(tmp_path / "x.csv")!r}],
                     ["sql", "SELECT 1", "--db", db],
                     ["reindex", "--db", db],
                     # Learned keypoints too: the catalogue described again, then a night with them.
                     ["reindex", "--db", db, "--detector", "xfeat"],
                     ["index", {str(folder)!r}, "--db", db, "--quiet", "--detector", "xfeat"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output, result.exception)
        """
    )
    script = "\n".join(["import sys", block, commands, check, 'print("ok")'])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_index_and_queries_run_without_importing_torch(survey_archive: Path, tmp_path: Path) -> None:
    folder = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    # Any import of torch fails loudly instead of going unnoticed; what a catalogue teaches is
    # read without torch too.
    block = 'sys.modules["torch"] = None\nimport catalog.offline.training_set'
    check = (
        'heavy = ("torch", "torchvision", "onnx")\n'
        "loaded = sorted(m for m, mod in sys.modules.items() "
        'if mod is not None and m.split(".")[0] in heavy)\n'
        "assert not loaded, loaded"
    )
    _nightly_commands(folder, tmp_path, block=block, check=check)


@pytest.mark.slow
def test_the_nightly_commands_never_import_the_offline_or_training_code(
    survey_archive: Path, tmp_path: Path
) -> None:
    folder = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    check = (
        'day = sorted(m for m in sys.modules if m.startswith(("catalog.offline", "catalog.train")))\n'
        "assert not day, day"
    )
    _nightly_commands(folder, tmp_path, block="", check=check)
