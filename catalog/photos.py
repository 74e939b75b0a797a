"""Walk a photo archive: image files, content ids, EXIF time and GPS, survey fields from paths."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"})
_SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})
_SURVEY_FOLDER = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[_ -]+(?P<site>.+))?$")
_SIDE_TOKENS = {"left": "left", "l": "left", "right": "right", "r": "right"}
_CROP_TOKENS = {"head": "head", "body": "body"}
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class FoundFile:
    """A file the walk found, before it is opened."""

    path: Path
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class PathFields:
    """Survey fields read from a photo's folders and name."""

    survey_date: date | None
    site: str | None
    camera: str | None
    side: str | None
    crop: str | None


@dataclass(frozen=True)
class PhotoMeta:
    """What finprint records about a photo besides its pixels."""

    photo_id: str
    taken_at: datetime | None
    latitude: float | None
    longitude: float | None
    fields: PathFields


def walk(root: Path) -> Iterator[FoundFile]:
    """Image files under `root` (or `root` itself), sorted, skipping hidden and system files."""
    if root.is_file():
        stat = root.stat()
        yield FoundFile(root, stat.st_size, stat.st_mtime_ns)
        return
    seen_dirs: set[tuple[int, int]] = set()
    for directory, subdirs, files in os.walk(root, followlinks=True):
        stat = os.stat(directory)
        # A symlink loop would revisit a folder: remember folders by device and inode.
        if (stat.st_dev, stat.st_ino) in seen_dirs:
            subdirs.clear()
            continue
        seen_dirs.add((stat.st_dev, stat.st_ino))
        subdirs[:] = sorted(d for d in subdirs if not _is_hidden(d))
        for name in sorted(files):
            if _is_hidden(name) or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(directory) / name
            try:
                file_stat = path.stat()
            except OSError:
                continue  # vanished or dangling link: nothing to catalogue
            yield FoundFile(path, file_stat.st_size, file_stat.st_mtime_ns)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in _SYSTEM_NAMES


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_path_fields(path: Path, root: Path) -> PathFields:
    """Survey date and site from a `YYYY-MM-DD_<site>` folder; side and crop from name tokens."""
    try:
        parts = path.relative_to(root).parts if root.is_dir() else (path.name,)
    except ValueError:
        parts = path.parts
    survey_date: date | None = None
    site: str | None = None
    camera: str | None = None
    for index, folder in enumerate(parts[:-1]):
        match = _SURVEY_FOLDER.match(folder)
        if match:
            try:
                survey_date = date.fromisoformat(match["date"])
            except ValueError:
                continue
            site = match["site"]
            # A folder below the survey folder is taken as the camera.
            if index + 2 < len(parts):
                camera = parts[index + 1]
    side: str | None = None
    crop: str | None = None
    for part in parts:
        for token in _TOKEN_SPLIT.split(Path(part).stem.lower()):
            if side is None and token in ("left", "right"):
                side = _SIDE_TOKENS[token]
            if crop is None and token in _CROP_TOKENS:
                crop = _CROP_TOKENS[token]
    return PathFields(survey_date, site, camera, side, crop)


def read_exif(image: Image.Image) -> tuple[datetime | None, float | None, float | None]:
    """DateTimeOriginal and GPS position from an open image's EXIF, when present and sane."""
    exif = image.getexif()
    taken_at = None
    stamp = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
    if isinstance(stamp, str):
        try:
            taken_at = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            taken_at = None
    gps = exif.get_ifd(0x8825)
    latitude = _gps_degrees(gps.get(2), gps.get(1), "S")
    longitude = _gps_degrees(gps.get(4), gps.get(3), "W")
    if latitude is not None and not -90 <= latitude <= 90:
        latitude = None
    if longitude is not None and not -180 <= longitude <= 180:
        longitude = None
    return taken_at, latitude, longitude


def _gps_degrees(value: object, ref: object, negative_ref: str) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    try:
        degrees, minutes, seconds = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = degrees + minutes / 60 + seconds / 3600
    return -result if ref == negative_ref else result
