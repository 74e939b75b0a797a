"""The reader stage of index and reindex: read, hash and decode photos in a bounded thread pool.

Every failure (unreadable, damaged, blank, too big, a name that is not UTF-8) becomes a
`PhotoError` row, never an exception, so one bad file never stops a night.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from catalog import verify
from catalog.modelcard import ModelCard
from catalog.photos import ExifFacts, FoundFile, UnreadableFile, printable_path, read_exif, read_photo_file
from catalog.preprocess import prepare, to_tensor
from catalog.store.rows import PhotoError


@dataclass(frozen=True)
class DecodedPhoto:
    """One photo read, hashed and decoded: the model's input, its EXIF facts, and its keypoints
    when verification described it from the same decode."""

    found: FoundFile
    root: Path
    photo_id: str
    tensor: np.ndarray
    width: int
    height: int
    exif: ExifFacts
    features: verify.LocalFeatures | None = None


def decoded_batches(
    todo: list[tuple[Path, FoundFile]],
    card: ModelCard,
    workers: int,
    batch_size: int,
    seconds: dict[str, float],
    *,
    describe: verify.Detector | None = None,
    described: AbstractSet[str] = frozenset(),
) -> Iterator[tuple[list[DecodedPhoto], list[PhotoError]]]:
    """Decode in a thread pool, at most two batches ahead of the consumer (a bounded queue), so
    decoding the next batch overlaps with embedding and writing this one. `workers` 0: one per core.
    With a `describe` detector, photos are described too, except those in `described` (whose
    keypoints the catalogue already keeps: keypoints depend on the photo's content alone)."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        pending: deque[Future[DecodedPhoto | PhotoError]] = deque()
        items = iter(todo)
        limit = 2 * batch_size
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                nxt = next(items, None)
                if nxt is None:
                    exhausted = True
                    break
                pending.append(
                    pool.submit(
                        decode_one, nxt[0], nxt[1], card, seconds, describe=describe, described=described
                    )
                )
            if not pending:
                return
            decoded: list[DecodedPhoto] = []
            failures: list[PhotoError] = []
            for _ in range(min(batch_size, len(pending))):
                outcome = pending.popleft().result()
                if isinstance(outcome, PhotoError):
                    failures.append(outcome)
                else:
                    decoded.append(outcome)
            yield decoded, failures


# A frame this small (a thumbnail, a 1-pixel tracker) shows no skin pattern to recognise.
MIN_PHOTO_SIDE_PX = 16
# A frame whose grey levels spread less than this (standard deviation, 0-255) shows nothing: a lens
# cap, a flash into murk, a frame of open water. Each would otherwise become a new "fish". Real
# underwater photos, even dark ones, spread tens of levels.
BLANK_FRAME_GREY_STD = 2.0
BLANK_FRAME = "not usable: a blank frame (one flat colour: lens cap, murk or open water)"


def _is_blank(image: Image.Image) -> bool:
    thumbnail = image.convert("L").resize((64, 64), Image.Resampling.BILINEAR)
    return float(np.asarray(thumbnail, dtype=np.float32).std()) < BLANK_FRAME_GREY_STD


# The catalogue stores paths as UTF-8 text: a name in another encoding is an error row naming the fix.
NOT_UTF8_NAME = (
    "not read: its file or folder name is not valid UTF-8; rename it in UTF-8 "
    "(for example with `convmv -f latin1 -t utf8 -r --notest FOLDER`) and index again"
)


class _Unusable(Exception):
    """A file read to the end that is still not a photo finprint can catalogue; says why."""


def _check_size(width: int, height: int) -> None:
    # Pillow itself only refuses above twice its limit; a photo is checked against it.
    limit = Image.MAX_IMAGE_PIXELS or 0
    if limit and width * height > limit:
        raise _Unusable(f"{width} x {height} pixels is more than a photo ({limit:,} at most)")
    if min(width, height) < MIN_PHOTO_SIDE_PX:
        raise _Unusable(f"not usable: {width} x {height} pixels is too small to show a fish")


# What can go wrong reading one file; each becomes an error row, never a crash of the night.
# PIL reports truncated and corrupt files as OSError (UnidentifiedImageError is one), some broken
# headers as SyntaxError; a file deleted or unreadable mid-run (UnreadableFile) is an OSError too.
_FAILURES = (_Unusable, Image.DecompressionBombError, MemoryError, OSError, SyntaxError, ValueError)


def _failure_reason(failure: BaseException) -> str:
    """The error row's words for why a file was not catalogued."""
    if isinstance(failure, _Unusable):
        return str(failure)
    if isinstance(failure, Image.DecompressionBombError):
        return f"image too large to be a photo ({failure})"
    if isinstance(failure, UnidentifiedImageError):
        # Pillow's own message names its in-memory buffer ("<_io.BytesIO object at 0x...>").
        return "cannot read: not an image format Pillow knows (or the file is damaged)"
    if isinstance(failure, UnreadableFile):
        return f"not read: {failure}"
    if isinstance(failure, MemoryError):
        return "not read: decoding it needed more memory than this machine has free"
    return f"cannot read: {failure}"


def decode_one(
    root: Path,
    found: FoundFile,
    card: ModelCard,
    seconds: dict[str, float],
    *,
    describe: verify.Detector | None = None,
    described: AbstractSet[str] = frozenset(),
) -> DecodedPhoto | PhotoError:
    """Read, hash and decode one file, and with a `describe` detector find its keypoints from the
    same decode (unless its id is in `described`); any failure becomes data, never an exception."""
    tick = time.perf_counter()
    where = printable_path(found.path)
    try:
        if where != str(found.path):
            raise _Unusable(NOT_UTF8_NAME)
        data = read_photo_file(found.path)
        if not data:
            raise _Unusable("empty file (0 bytes)")
        photo_id = hashlib.sha256(data).hexdigest()
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it; finprint refuses those photos itself below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            width, height = image.size
            _check_size(width, height)
            exif = read_exif(image)
            upright = prepare(image, card.input, None, describe.long_side_px if describe else 0)
            if _is_blank(upright):
                raise _Unusable(BLANK_FRAME)
            tensor = to_tensor(upright, card.input)
        features = None
        # Decoded at the describing size all the same: the model's input must not depend on
        # whether this photo's keypoints were already kept.
        if describe is not None and photo_id not in described:
            described_at = time.perf_counter()
            features = describe.describe(upright)
            seconds["describe"] += time.perf_counter() - described_at
    except _FAILURES as failure:
        return PhotoError(where, _failure_reason(failure))
    finally:
        # Several workers add here at once; a lost update only blurs a timing figure.
        seconds["decode"] += time.perf_counter() - tick
    return DecodedPhoto(found, root, photo_id, tensor, width, height, exif, features)
