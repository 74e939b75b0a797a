"""The nightly path never imports torch: a station laptop has only the runtime dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_index_and_queries_run_without_importing_torch(survey_archive: Path, tmp_path: Path) -> None:
    folder = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    script = textwrap.dedent(
        f"""
        import sys
        # Make any import of torch fail loudly, not just go unnoticed.
        sys.modules["torch"] = None
        from typer.testing import CliRunner
        from catalog.cli import app
        import catalog.training_set  # what a catalogue teaches is read without torch
        runner = CliRunner()
        db = {str(tmp_path / "c.duckdb")!r}
        for args in (["index", {str(folder)!r}, "--db", db, "--quiet"],
                     ["history", "FP-000001", "--db", db],
                     ["report", "--db", db],
                     ["export", "csv", "--db", db, "--out", {str(tmp_path / "x.csv")!r}],
                     ["sql", "SELECT 1", "--db", db],
                     ["reindex", "--db", db]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output, result.exception)
        heavy = ("torch", "torchvision", "onnx")
        loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in heavy)
        assert not loaded, loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
