"""Walk a photo archive: image files, EXIF time and GPS, survey fields from paths."""

from __future__ import annotations

import os
import re
import stat as stat_module
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from PIL import Image

from catalog.errors import FinprintError
from catalog.vocabulary import Crop, Side

# Camera and phone formats, and what scanners and older lab software write (BMP, PGM/PPM).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".pgm", ".ppm"})
try:
    # Optional: phones write HEIC; pillow-heif teaches PIL to read it.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    IMAGE_SUFFIXES = IMAGE_SUFFIXES | {".heic", ".heif"}
except ImportError:
    pass
_SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})
# The date, then one separator: " - ", underscores (spaces around them allowed), spaces, or one
# "-". A site may itself start with "-" or "+" ("2024-06-06_-2+3" is site "-2+3").
_SURVEY_FOLDER = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})(?:(?: +- +| *_+ *| +|-)(?P<site>.+))?$")
_SIDE_TOKENS = {"left": Side.LEFT, "l": Side.LEFT, "right": Side.RIGHT, "r": Side.RIGHT}
_CROP_TOKENS = {"head": Crop.HEAD, "body": Crop.BODY}
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
    # From the pattern's {encounter}: a folder holding photos of ONE fish seen once (both flanks,
    # head and body), so its catalogue entries can be linked automatically.
    encounter: str | None = None
    # From the pattern's {species}: which animal a folder holds, where one archive has several.
    species: str | None = None


def _list_once(directory: Path, seen_dirs: set[tuple[int, int]]) -> list[os.DirEntry[str]]:
    """The entries of a folder not listed before in this walk (none if it was: a symlink loop
    would revisit it, so folders are remembered by device and inode)."""
    stat = os.stat(directory)
    if (stat.st_dev, stat.st_ino) in seen_dirs:
        return []
    seen_dirs.add((stat.st_dev, stat.st_ino))
    with os.scandir(directory) as entries:
        return list(entries)


def _folders_and_photos(
    listed: list[os.DirEntry[str]], bound: Path, left_out: list[str]
) -> tuple[list[str], list[os.DirEntry[str]]]:
    """The folder's subfolders (names) and its photo files (entries, by name), hidden ones left
    out, and folder links that lead out of `bound` (the archive, resolved) left out too, each
    appended to `left_out` as "LINK -> TARGET"."""
    subdirs: list[str] = []
    photos: list[os.DirEntry[str]] = []
    for entry in listed:
        if _is_hidden(entry.name):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir and entry.is_symlink():
            target = Path(entry.path).resolve()
            if not target.is_relative_to(bound):
                left_out.append(f"{printable_path(entry.path)} -> {printable_path(target)}")
                continue
        if is_dir:
            subdirs.append(entry.name)
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
            photos.append(entry)
    return subdirs, sorted(photos, key=lambda entry: entry.name)


def walk(
    root: Path, problems: list[str] | None = None, left_out: list[str] | None = None
) -> Iterator[FoundFile]:
    """Image files under `root` (or `root` itself), sorted, skipping hidden and system files.

    Folders are visited with an explicit stack (no recursion limit however deep the archive), and
    a folder that cannot be listed is appended to `problems`, never skipped silently. A folder
    link that leads out of the archive (to /usr/share/doc, a colleague's home) is not followed:
    it is appended to `left_out`."""
    bound = root.resolve()
    left_out = [] if left_out is None else left_out
    if root.is_file():
        stat = root.stat()
        yield FoundFile(root, stat.st_size, stat.st_mtime_ns)
        return
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            listed = _list_once(directory, seen_dirs)
        except OSError:
            if problems is not None:
                problems.append(printable_path(directory))
            continue
        subdirs, photos = _folders_and_photos(listed, bound, left_out)
        # Depth first, in name order: the order photos are catalogued in never depends on the disk.
        stack.extend(directory / name for name in sorted(subdirs, reverse=True))
        for entry in photos:
            path = directory / entry.name
            try:
                # What path.stat() would say (symlinks followed), without building the path twice.
                file_stat = entry.stat()
            except OSError:
                # A dangling link, or a file gone since the folder was listed: reading it will
                # fail, and that failure is recorded with its reason like any other bad file.
                yield FoundFile(path, -1, 0)
                continue
            yield FoundFile(path, file_stat.st_size, file_stat.st_mtime_ns)


# A camera JPEG is a few MB and a scanned TIFF rarely over 100 MB; a bigger "photo" is a video, a
# disk image or a link to a device, and reading it whole would take the night's memory.
MAX_PHOTO_BYTES = 256 * 1024 * 1024


class UnreadableFile(OSError):
    """A file that must not be read as a photo; its message says why."""


def read_photo_file(path: Path, max_bytes: int = MAX_PHOTO_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`. FIFOs, sockets and devices (also behind a
    symlink) are refused before any read, so that nothing can block the night or fill its memory."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat_module.S_ISREG(info.st_mode):
            raise UnreadableFile("not a regular file (a pipe, socket or device, perhaps behind a link)")
        if info.st_size > max_bytes:
            raise UnreadableFile(
                f"{info.st_size / 1e6:.0f} MB is more than a photo ({max_bytes / 1e6:.0f} MB at most)"
            )
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableFile(f"grew past {max_bytes / 1e6:.0f} MB while being read")
    return data


def printable_path(path: Path | str) -> str:
    """The path as text that any UTF-8 store can hold: bytes that are not UTF-8 (a Latin-1 name
    from an old share) are shown as \\xNN escapes instead of Python's lone surrogates."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", errors="backslashreplace")
    return text


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in _SYSTEM_NAMES


class PathPattern:
    """Survey fields from a path pattern such as `{date}_{site}/{camera}/*` (from finprint.toml).

    Fields: {date} (YYYY-MM-DD or YYYYMMDD), {site}, {camera}, {side}, {crop}, {encounter},
    {species}, {skip} (any one name part); `*` matches within one folder or file name, `**/` any
    number of folders. The pattern is matched against the path below the archive root; the file
    name may be left out.
    """

    FIELDS = ("date", "site", "camera", "side", "crop", "encounter", "species", "skip")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        where = f"path_pattern {pattern!r} (in finprint.toml or FINPRINT_PATH_PATTERN)"
        regex = ""
        position = 0
        seen: set[str] = set()
        for match in re.finditer(r"\{([^{}]*)\}|\*\*/|\*|[{}]", pattern):
            regex += re.escape(pattern[position : match.start()])
            token = match.group(0)
            if token == "**/":
                regex += r"(?:[^/]+/)*"
            elif token == "*":
                regex += r"[^/]*"
            elif token in "{}":
                raise FinprintError(f"{where}: unbalanced brace. Write fields as {{site}}.")
            else:
                name = match.group(1)
                if name not in self.FIELDS:
                    raise FinprintError(
                        f"{where}: unknown field {{{name}}}. "
                        f"Known fields: {', '.join('{' + f + '}' for f in self.FIELDS)}."
                    )
                if name in seen and name != "skip":
                    raise FinprintError(f"{where}: field {{{name}}} appears twice.")
                seen.add(name)
                if name == "date":
                    regex += r"(?P<date>\d{4}-?\d{2}-?\d{2})"
                elif name == "skip":
                    regex += r"[^/]+?"
                else:
                    regex += rf"(?P<{name}>[^/]+?)"
            position = match.end()
        regex += re.escape(pattern[position:])
        # A pattern of folders only also matches the file name below them.
        self._regex = re.compile(rf"^{regex}(?:/.*)?$")

    def fields(self, relative: str) -> PathFields | None:
        """The fields of one path below the root, or None when the pattern does not fit it."""
        match = self._regex.match(relative)
        if match is None:
            return None
        groups = match.groupdict()
        survey_date = None
        if groups.get("date"):
            digits = groups["date"].replace("-", "")
            try:
                survey_date = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
            except ValueError:
                return None
        return PathFields(
            survey_date,
            groups.get("site"),
            groups.get("camera"),
            _SIDE_TOKENS.get((groups.get("side") or "").lower()),
            _CROP_TOKENS.get((groups.get("crop") or "").lower()),
            groups.get("encounter"),
            groups.get("species"),
        )


def _parts_below(path: Path, root: Path) -> tuple[str, ...]:
    try:
        return path.relative_to(root).parts if root.is_dir() else (path.name,)
    except ValueError:
        return path.parts


def pattern_fits(path: Path, root: Path, pattern: PathPattern) -> bool:
    """Whether the pattern describes this photo's path below its archive root."""
    return pattern.fields("/".join(_parts_below(path, root))) is not None


def parse_path_fields(path: Path, root: Path, pattern: PathPattern | None = None) -> PathFields:
    """Survey fields of a photo: from the pattern when given and it fits, else by convention
    (a `YYYY-MM-DD_<site>` folder, the folder below it as camera, left/right and head/body tokens);
    fields the pattern leaves empty are filled in by convention too."""
    parts = _parts_below(path, root)
    by_convention = _conventional_fields(parts)
    from_pattern = pattern.fields("/".join(parts)) if pattern else None
    if from_pattern is None:
        return by_convention
    return PathFields(
        from_pattern.survey_date or by_convention.survey_date,
        from_pattern.site or by_convention.site,
        from_pattern.camera or by_convention.camera,
        from_pattern.side or by_convention.side,
        from_pattern.crop or by_convention.crop,
        # Scoped to the folder above it, so "fish1" on two days are two encounters.
        f"{path.parent.parent}/{from_pattern.encounter}" if from_pattern.encounter else None,
        from_pattern.species,
    )


def side_from_tokens(tokens: list[str]) -> str | None:
    """ "left"/"right", or a word starting with one ("leftphoto", "rightflank"), names the flank."""
    for token in tokens:
        if token.startswith((Side.LEFT, Side.RIGHT)) and token.isalpha():
            return Side.LEFT if token.startswith(Side.LEFT) else Side.RIGHT
    return None


def _conventional_fields(parts: tuple[str, ...]) -> PathFields:
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
    tokens = [token for part in parts for token in _TOKEN_SPLIT.split(Path(part).stem.lower())]
    side = side_from_tokens(tokens)
    crop = next((_CROP_TOKENS[t] for t in tokens if t in _CROP_TOKENS), None)
    return PathFields(survey_date, site, camera, side, crop)


@dataclass(frozen=True)
class ExifFacts:
    """When and where the camera says a photo was taken."""

    taken_at: datetime | None  # the camera's local clock time
    utc_offset: str | None  # e.g. "+02:00", when the camera recorded it
    latitude: float | None
    longitude: float | None


_UTC_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def read_exif(image: Image.Image) -> ExifFacts:
    """DateTimeOriginal (with its offset) and GPS position from EXIF, when present and sane."""
    exif = image.getexif()
    details = exif.get_ifd(0x8769)
    taken_at = None
    stamp = details.get(0x9003) or exif.get(0x0132)
    if isinstance(stamp, str):
        try:
            taken_at = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            taken_at = None  # "0000:00:00 00:00:00" and other impossible dates
    offset = details.get(0x9011)
    utc_offset = offset.strip("\x00 ") if isinstance(offset, str) else None
    if utc_offset is not None and not _UTC_OFFSET.match(utc_offset):
        utc_offset = None
    gps = exif.get_ifd(0x8825)
    latitude = _gps_degrees(gps.get(2), gps.get(1), "S")
    longitude = _gps_degrees(gps.get(4), gps.get(3), "W")
    if latitude is not None and not -90 <= latitude <= 90:
        latitude = None
    if longitude is not None and not -180 <= longitude <= 180:
        longitude = None
    return ExifFacts(taken_at, utc_offset if taken_at else None, latitude, longitude)


def _gps_degrees(value: object, ref: object, negative_ref: str) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    try:
        degrees, minutes, seconds = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = degrees + minutes / 60 + seconds / 3600
    return -result if ref == negative_ref else result
