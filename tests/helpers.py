"""Helpers the tests share that are not fixtures: running finprint as a person would, a full
disk, a killed night, a forged model card, a drawn set kept in pytest's cache."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catalog.store import Store


def drawn_once(config: pytest.Config, root: Path, draw: Callable[..., object], **params: Any) -> None:
    """Draw a set into `root`, or copy it from pytest's cache when this drawer, with the same
    parameters, numpy and Pillow, drew it before: the drawing is deterministic (test_synthetic
    checks it byte for byte) and costs seconds, most of the fast lane's set-up. Without pytest's
    cache (`-p no:cacheprovider`) every session draws."""
    cache = getattr(config, "cache", None)
    if cache is None:
        draw(root, **params)
        return
    import hashlib

    import numpy
    import PIL

    import catalog.synthetic

    key = hashlib.sha256(Path(catalog.synthetic.__file__).read_bytes())
    key.update(repr((draw.__name__, sorted(params.items()), numpy.__version__, PIL.__version__)).encode())
    kept = Path(cache.mkdir(f"drawn-{draw.__name__}")) / key.hexdigest()[:16]
    if not kept.is_dir():
        draw(root, **params)
        for stale in kept.parent.iterdir():  # what an older drawer drew
            shutil.rmtree(stale)
        partial = kept.with_name(kept.name + ".partial")
        shutil.copytree(root, partial)
        partial.rename(kept)  # only a whole set is ever found under its key
        return
    shutil.copytree(kept, root, dirs_exist_ok=True)


def retag_model(source: Path, target: Path, model_version: str) -> None:
    """Copy a model, changing only its card's model_version: a stand-in for another model."""
    edit_card(source, target, lambda card: card.update(model_version=model_version))


def edit_card(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Copy a model with its card's JSON changed in place by `change`."""
    import onnx

    proto = onnx.load(str(source))
    for prop in proto.metadata_props:
        if prop.key == "finprint":
            body = json.loads(prop.value)
            change(body)
            prop.value = json.dumps(body)
    onnx.save(proto, str(target))


def die_after_batches(monkeypatch: pytest.MonkeyPatch, deaths: set[int]) -> Callable[[], None]:
    """Make `finprint index` die (KeyboardInterrupt) right after its Nth committed batch, for each N
    in `deaths`, counting across runs; returns the function that puts the real writer back."""
    from catalog.store import Store

    real_write = Store.write_batch
    writes = {"count": 0}

    def write_then_die(self: Store, *args: Any, **kwargs: Any) -> None:
        real_write(self, *args, **kwargs)
        writes["count"] += 1
        if writes["count"] in deaths:
            raise KeyboardInterrupt

    monkeypatch.setattr(Store, "write_batch", write_then_die)
    return lambda: monkeypatch.setattr(Store, "write_batch", real_write)


def run_finprint(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`finprint ARGS` as a person types it, but in this process (a new interpreter costs a second
    of imports per command): the real entry point, with its exit codes and its stdout and stderr
    apart. Tests of what only a separate process shows (signals, the shell, imports) use
    subprocess themselves."""
    from catalog.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        argv, sys.argv = sys.argv, ["finprint", *args]
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code
        finally:
            sys.argv = argv
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(["finprint", *args], returncode, out.getvalue(), err.getvalue())


def python_with_full_disk(
    code: str, limit_bytes: int, timeout_s: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new interpreter that may grow no file past `limit_bytes` (RLIMIT_FSIZE, its
    signal ignored so that writes fail with an error): a full disk, as far as that process sees."""
    prelude = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=timeout_s
    )


def _finprint_code(args: list[str]) -> str:
    return f"import sys\nsys.argv = ['finprint', *{args!r}]\nfrom catalog.cli import main\nmain()\n"


def finprint_with_full_disk(args: list[str], limit_bytes: int) -> subprocess.CompletedProcess[str]:
    """`finprint ARGS` in a new process with a full disk (see python_with_full_disk)."""
    return python_with_full_disk(_finprint_code(args), limit_bytes)


def finprint_in_new_process(
    args: list[str], prelude: str = "", timeout_s: int = 300
) -> subprocess.CompletedProcess[str]:
    """`finprint ARGS` in a new interpreter, after the Python `prelude` ran there: for what only a
    process of its own shows (a signal, say)."""
    return subprocess.run(
        [sys.executable, "-c", prelude + _finprint_code(args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def copy_catalogue(db: Path, folder: Path) -> Path:
    """A copy of a catalogue with everything kept beside it (keypoints, graphs, copies) in
    `folder`, made if need be; returns the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in db.parent.iterdir():
        if source.name.startswith(db.name):
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / source.name)
    return folder / db.name
