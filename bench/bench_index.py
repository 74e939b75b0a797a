"""Indexing speed: end-to-end photos/s beside the decode and inference ceilings and a naive loop.

Usage: python bench/bench_index.py [FOLDER ...] [--limit N] [--rerun-photos N] [--detectors sift,xfeat]
With no folder, ../shared/datasets/nyala (large camera JPEGs) and a generated archive are used.
All figures in one table come from the same run on the same photos; compare ratios, not
absolute numbers, on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from benchtable import bench_console, measures_table
from PIL import Image

from catalog.embed import Embedder
from catalog.night import index
from catalog.preprocess import preprocess
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.synthetic import generate_archive

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BATCH_SIZE = 32


def photos_in(folder: Path, limit: int) -> list[Path]:
    suffixes = {".jpg", ".jpeg", ".png"}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)[:limit]


def decode_rate(paths: list[Path], embedder: Embedder) -> tuple[float, np.ndarray]:
    """Photos/s of draft decode + resize + normalise on all cores."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        tensors = list(pool.map(lambda p: preprocess(p, embedder.card.input), paths))
    return len(paths) / (time.perf_counter() - started), np.stack(tensors)


def jpeg_only_rates(paths: list[Path], embedder: Embedder) -> dict[str, str]:
    """JPEG decoding alone (DCT-scaled to at least the network's input), photos/s on all cores:
    Pillow's draft mode, as the index decodes, beside simplejpeg (a libjpeg-turbo binding, not a
    finprint dependency: measured when installed) on the same files' bytes."""
    from io import BytesIO

    spec = embedder.card.input
    blobs = [path.read_bytes() for path in paths if path.suffix.lower() in (".jpg", ".jpeg")]

    def pillow(blob: bytes) -> None:
        with Image.open(BytesIO(blob)) as image:
            image.draft("RGB", (spec.width, spec.height))
            image.load()

    decoders: dict[str, Callable[[bytes], object] | None] = {"Pillow draft": pillow}
    try:
        import simplejpeg

        decoders["simplejpeg"] = lambda blob: simplejpeg.decode_jpeg(
            blob, colorspace="RGB", min_height=spec.height, min_width=spec.width
        )
    except ImportError:
        decoders["simplejpeg"] = None
    rows = {}
    for name, decode in decoders.items():
        label = f"JPEG decode only, {name} (photos/s, all cores)"
        if decode is None or not blobs:
            rows[label] = "- (not installed)" if blobs else "- (no JPEGs)"
            continue
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(decode, blobs))
        rows[label] = f"{len(blobs) / (time.perf_counter() - started):.0f}"
    return rows


def reader_rate(folder: Path, paths: list[Path], embedder: Embedder) -> float:
    """Photos/s of the index's own reader on all cores: read, hash, EXIF, draft decode, blank
    check and tensor, i.e. all a photo costs before the network."""
    from catalog.decode import decoded_batches
    from catalog.photos import FoundFile

    stats = [path.stat() for path in paths]
    todo = [
        (folder, FoundFile(path, st.st_size, st.st_mtime_ns)) for path, st in zip(paths, stats, strict=True)
    ]
    started = time.perf_counter()
    for _ in decoded_batches(todo, embedder.card, 0, BATCH_SIZE, {"decode": 0.0, "describe": 0.0}):
        pass
    return len(paths) / (time.perf_counter() - started)


def infer_rate(tensors: np.ndarray, embedder: Embedder, batch_size: int = BATCH_SIZE) -> float:
    """Photos/s of onnxruntime on ready tensors, by default at the index's batch size."""
    embedder.embed(tensors[:batch_size])  # warm-up: memory arenas (and CUDA kernels on a GPU)
    started = time.perf_counter()
    for i in range(0, len(tensors), batch_size):
        embedder.embed(tensors[i : i + batch_size])
    return len(tensors) / (time.perf_counter() - started)


def naive_rate(paths: list[Path], embedder: Embedder) -> float | None:
    """The seed study's loop: full decode, resize, PyTorch eager, one photo at a time.
    The network has the default model's architecture with random weights: speed does not
    depend on the weights' values."""
    try:
        import torch

        from catalog.train.nets import BACKBONES, build_backbone
    except ImportError:
        return None
    spec = embedder.card.input
    backbone = str(embedder.card.trained_on.get("backbone", "small"))
    network = build_backbone(
        backbone if backbone in BACKBONES else "small", embedder.card.embedding.dim, spec.channels
    ).eval()
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    started = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB").resize((spec.width, spec.height)), dtype=np.float32)
            tensor = torch.from_numpy(((pixels / 255 - mean) / std).transpose(2, 0, 1).copy())[None]
            network(tensor)
    return len(paths) / (time.perf_counter() - started)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def end_to_end(
    folder: Path, paths: list[Path], workdir: Path, detector: str | None
) -> tuple[float, dict[str, float], float, float]:
    """finprint index on a fresh catalogue (verified with `detector`, or on the embedding alone):
    its photos/s, stage times and CPU seconds per photo; then a rerun with nothing new."""
    archive = workdir / "archive"
    if not archive.exists():
        archive.mkdir()
        for i, path in enumerate(paths):
            target = archive / f"{i:06d}_{path.name}"
            os.symlink(path.resolve(), target)
    settings = Settings(
        db_path=workdir / f"{detector or 'embedding'}.duckdb",
        batch_size=BATCH_SIZE,
        verify=detector is not None,
        detector=detector or "sift",
    )
    started, cpu_started = time.perf_counter(), cpu_seconds()
    result = index(settings, [archive])
    rate = result.photos_new / (time.perf_counter() - started)
    cpu_per_photo = (cpu_seconds() - cpu_started) / max(1, result.photos_new)
    started = time.perf_counter()
    index(settings, [archive])
    return rate, result.seconds, time.perf_counter() - started, cpu_per_photo


def rerun_time(photo_count: int, workdir: Path) -> float:
    """Seconds for a rerun with nothing new over `photo_count` catalogued (tiny) photos."""
    archive = workdir / "many"
    rng = np.random.default_rng(0)
    for i in range(photo_count):
        folder = archive / f"2024-06-{1 + i // 2000:02d}_Site{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 48, 3), dtype=np.uint8)).save(folder / f"IMG_{i:06d}.jpg")
    settings = Settings(db_path=workdir / "many.duckdb", batch_size=128)
    index(settings, [archive])
    started = time.perf_counter()
    index(settings, [archive])
    return time.perf_counter() - started


def _cpu_rows(label: str, rate: float, cpu_per_photo_s: float) -> dict[str, str]:
    """What a run cost the whole process per photo, and the most photos/s the cores could give
    at that cost: the bound the run is measured against once the stages overlap."""
    bound = (os.cpu_count() or 1) / cpu_per_photo_s
    return {
        f"{label}: process CPU per photo (ms)": f"{1000 * cpu_per_photo_s:.1f}",
        f"{label}: all cores busy at that cost (photos/s)": f"{bound:.0f}",
        f"{label}: end-to-end / that": f"{rate / bound:.2f}",
    }


def _verified_rows(
    kind: str, rate: float, verified: dict[str, float], unverified: dict[str, float], *, photos: int,
    cpu_per_photo_s: float,
) -> dict[str, str]:  # fmt: skip
    """The verified run's rate and the CPU verification took per photo: describing (in the
    decode threads) and matching the shortlist (in identification), beyond what the
    embedding-only run spent there."""
    if not verified.get("describe"):
        return {f"with {kind} verification (photos/s)": "- (no OpenCV or no fitted fusion)"}
    verify_ms = 1000 * (verified["describe"] + verified["identify"] - unverified["identify"]) / max(1, photos)
    return {
        f"with {kind} verification (photos/s)": f"{rate:.0f}",
        **_cpu_rows(kind, rate, cpu_per_photo_s),
        f"{kind} verification CPU per photo (ms, k=20)": f"{verify_ms:.1f}",
        f"{kind} describe CPU per photo (ms)": f"{1000 * verified['describe'] / max(1, photos):.1f}",
        f"stage group with {kind} verification (s)": f"{verified.get('group', 0):.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--limit", type=int, default=300, help="photos per folder")
    parser.add_argument("--rerun-photos", type=int, default=10_000, help="0 to skip the rerun test")
    parser.add_argument("--detectors", default="sift,xfeat", help="verified runs, side by side")
    args = parser.parse_args()
    console = bench_console()
    embedder = Embedder(DEFAULT_MODEL_PATH)
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folders = list(args.folders)
        if not folders:
            if (SHARED / "nyala").is_dir():
                folders.append(SHARED / "nyala")
            generated = Path(scratch) / "generated"
            generate_archive(generated, n_individuals=30, n_surveys=6, seed=42)
            folders.append(generated)
        for number, folder in enumerate(folders):
            paths = photos_in(folder, args.limit)
            workdir = Path(scratch) / f"run{number}"
            workdir.mkdir()
            decode, tensors = decode_rate(paths, embedder)
            infer = infer_rate(tensors, embedder)
            limit = 1 / (1 / decode + 1 / infer)
            reader = reader_rate(folder, paths, embedder)
            reader_limit = 1 / (1 / reader + 1 / infer)
            e2e, stages, rerun, e2e_cpu = end_to_end(folder, paths, workdir, None)
            verified = {kind: end_to_end(folder, paths, workdir, kind) for kind in args.detectors.split(",")}
            naive = naive_rate(paths[:100], embedder)
            columns[folder.name] = {
                "photos": str(len(paths)),
                "decode (photos/s, all cores)": f"{decode:.0f}",
                **jpeg_only_rates(paths, embedder),
                "infer ceiling (photos/s)": f"{infer:.0f}",
                "limit 1/(1/decode + 1/infer)": f"{limit:.0f}",
                "index's reader (photos/s, all cores)": f"{reader:.0f}",
                "reader limit 1/(1/reader + 1/infer)": f"{reader_limit:.0f}",
                "end-to-end index (photos/s)": f"{e2e:.0f}",
                "end-to-end / infer ceiling": f"{e2e / infer:.2f}",
                "end-to-end / limit": f"{e2e / limit:.2f}",
                "end-to-end / reader limit": f"{e2e / reader_limit:.2f}",
                **_cpu_rows("embedding only", e2e, e2e_cpu),
                "naive loop (photos/s)": "-" if naive is None else f"{naive:.1f}",
                "end-to-end / naive": "-" if naive is None else f"{e2e / naive:.1f}x",
                "rerun, nothing new (s)": f"{rerun:.2f}",
                **{
                    f"stage {k} (s)": f"{stages.get(k, 0):.2f}"
                    for k in ("decode", "embed", "identify", "write", "group")
                },
            }
            for kind, (rate, verified_stages, _, cpu) in verified.items():
                columns[folder.name] |= _verified_rows(
                    kind, rate, verified_stages, stages, photos=len(paths), cpu_per_photo_s=cpu
                )
        table = measures_table(
            f"finprint index speed (batch {BATCH_SIZE}, {os.cpu_count()} cores, one run)", columns
        )
        console.print(table)
        console.print("Stage decode time is summed over the decoding threads, so it can exceed wall time.")
        if args.rerun_photos:
            seconds = rerun_time(args.rerun_photos, Path(scratch))
            console.print(
                f"Rerun with nothing new over {args.rerun_photos} catalogued photos: {seconds:.2f} s"
            )


if __name__ == "__main__":
    main()
