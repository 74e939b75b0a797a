"""Pictures for the browser review: only this catalogue's own photos, checked by content, scaled
once and cached on disk beside the catalogue (never inside it)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

from PIL import Image

from catalog import verify
from catalog.errors import FinprintError
from catalog.report_html import draw_decisive, open_upright
from catalog.store import Store

# What a page may ask for: the long side of each rendition, in pixels.
RENDITION_PIXELS = {"small": 560, "large": 1600}
LINES_HEIGHT_PIXELS = 360
JPEG_QUALITY = 85
# A photo id is the sha256 of the file's bytes: anything else in a request is refused unread.
PHOTO_ID = re.compile(r"[0-9a-f]{64}")


class NotServed(FinprintError):
    """A request for something that is not a readable photo of this catalogue's archive."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: not a photo of this catalogue's archive (or no longer readable there).")


def cache_folder(db_path: Path) -> Path:
    """Where the review's scaled photos live: beside the catalogue, safe to delete."""
    return db_path.with_name(db_path.name + ".thumbnails")


def catalogued_files(store: Store, photo_id: str) -> list[Path]:
    """Where a catalogued photo may be read: its catalogued paths that lie, symlinks resolved,
    inside a folder the catalogue's runs walked. Nothing from a request reaches the file system
    but the id, looked up in the catalogue; the bytes are checked against it when read."""
    if not PHOTO_ID.fullmatch(photo_id):
        raise NotServed(photo_id[:80])
    roots = []
    for root in store.archive_roots():
        try:
            roots.append(Path(root).resolve(strict=True))
        except OSError:  # a folder since unmounted or removed
            continue
    inside = []
    for path in store.photo_paths(photo_id):
        try:
            real = Path(path).resolve(strict=True)
        except OSError:
            continue
        if any(real.is_relative_to(root) for root in roots):  # not a symlink out of the archive
            inside.append(real)
    return inside


def verified_bytes(files: list[Path], photo_id: str) -> bytes:
    """The first of `files` that still holds the very content catalogued (its sha256 is the id)."""
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == photo_id:
            return data
    raise NotServed(photo_id[:12])


def _decoded(files: list[Path], photo_id: str, draft_size: tuple[int, int]) -> Image.Image:
    """The catalogued photo read from `files` (checked by content), decoded upright."""
    try:
        return open_upright(io.BytesIO(verified_bytes(files, photo_id)), draft_size)
    except (OSError, SyntaxError, ValueError) as exc:
        raise NotServed(photo_id[:12]) from exc


def _write_jpeg(image: Image.Image, target: Path) -> Path:
    """Write atomically: a killed server never leaves half a picture in the cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            image.save(out, format="JPEG", quality=JPEG_QUALITY)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


class Pictures:
    """Scaled photos and keypoint pictures of one catalogue, cached by photo id."""

    def __init__(self, db_path: Path) -> None:
        self.folder = cache_folder(db_path)

    def cached(self, photo_id: str, size: str) -> Path | None:
        """The rendition if it was made before (no catalogue needed); None otherwise."""
        if not PHOTO_ID.fullmatch(photo_id) or size not in RENDITION_PIXELS:
            raise NotServed(photo_id[:80])
        target = self._target(size, photo_id)
        return target if target.is_file() else None

    def rendition(self, files: list[Path], photo_id: str, size: str) -> Path:
        """The photo scaled to `size` (RENDITION_PIXELS), EXIF-upright, made once from the first
        of `files` (catalogued_files) that holds it. Needs no catalogue: made outside its lock."""
        target = self.cached(photo_id, size)
        if target is not None:
            return target
        pixels = RENDITION_PIXELS[size]
        image = _decoded(files, photo_id, (pixels, pixels))
        image.thumbnail((pixels, pixels))
        return _write_jpeg(image, self._target(size, photo_id))

    def keypoint_lines(self, store: Store, photo_id: str) -> Path:
        """Both photos of a sighting side by side with the keypoint pairs it was decided on."""
        if not PHOTO_ID.fullmatch(photo_id):
            raise NotServed(photo_id[:80])
        target = self._target("lines", photo_id)
        if target.is_file():
            return target
        matched, lines = store.decisive_lines(photo_id)
        if matched is None or lines is None:
            raise NotServed(photo_id[:12])
        decisive = verify.DecisiveLines.from_bytes(lines)
        left = _decoded(catalogued_files(store, photo_id), photo_id, decisive.size)
        right = _decoded(catalogued_files(store, matched), matched, decisive.matched_size)
        return _write_jpeg(draw_decisive(left, right, decisive, LINES_HEIGHT_PIXELS), target)

    def _target(self, kind: str, photo_id: str) -> Path:
        return self.folder / kind / photo_id[:2] / f"{photo_id}.jpg"
