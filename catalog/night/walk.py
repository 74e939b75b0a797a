"""The night's walk: the archive's files, roots as the catalogue knows them, and what moved or is gone."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import ArchiveNotFound, FinprintError, NoPhotosFound, NotAnImage
from catalog.night.outcome import RunResult
from catalog.photos import (
    IMAGE_SUFFIXES,
    FoundFile,
    PathFields,
    PathPattern,
    parse_path_fields,
    pattern_fits,
    printable_path,
    walk,
)
from catalog.store import Batch, KnownPath, PhotoError, Store

# Linux's PATH_MAX: a longer path cannot be opened by name, by finprint or by anything else.
PATH_MAX_BYTES = 4096


def unchanged(known: KnownPath | None, found: FoundFile) -> bool:
    return known is not None and (known.size_bytes, known.mtime_ns) == (found.size_bytes, found.mtime_ns)


def find_files(
    roots: Iterable[Path], unreadable_folders: list[str] | None = None, left_out: list[str] | None = None
) -> list[tuple[Path, FoundFile]]:
    """Every image file under the roots, with the root it was found under; folders that could not
    be listed are appended to `unreadable_folders` (their paths), folder links that lead out of
    the archive (not followed) to `left_out`."""
    found: list[tuple[Path, FoundFile]] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            raise ArchiveNotFound(root)
        if root.is_file() and root.suffix.lower() not in IMAGE_SUFFIXES:
            raise NotAnImage(root, f"'{root.suffix}' is not a photo file type")
        problems: list[str] = []
        files = [(root, f) for f in walk(root, problems, left_out)]
        if unreadable_folders is not None:
            unreadable_folders.extend(problems)
        if not files and not problems:
            raise NoPhotosFound(root)
        # Overlapping roots (`index A A/sub`) find a file twice: it is one photo at one path.
        found.extend((where, f) for where, f in files if f.path not in seen)
        seen.update(f.path for _, f in files)
    return found


def _listing_failure(folder: str) -> str:
    """Why a folder could not be listed, where finprint can tell."""
    length_bytes = len(os.fsencode(folder))
    if length_bytes >= PATH_MAX_BYTES:
        return (
            f"folder could not be listed: its path is {length_bytes:,} bytes, over the system's limit "
            f"of {PATH_MAX_BYTES:,}; shorten the folder names above it"
        )
    return "folder could not be listed"


def absolutised(
    store: Store, known: dict[str, KnownPath], found: list[tuple[Path, FoundFile]]
) -> dict[str, KnownPath]:
    """Catalogues made before paths were stored absolute keep them as typed: a relative path whose
    absolute form this run found from here is the same file, and is rewritten in place."""
    present = {str(f.path) for _, f in found}
    renamed: dict[str, str] = {}
    for path in known:
        if not os.path.isabs(path):
            absolute = os.path.abspath(path)
            if absolute in present and absolute not in known:
                renamed[path] = absolute
    if not renamed:
        return known
    store.absolutise_paths(renamed)
    return store.known_paths()


def pattern_coverage(pattern: PathPattern, todo: list[tuple[Path, FoundFile]]) -> list[str]:
    """A path pattern that fits none of tonight's photos is a mistake in the settings: refused
    before anything is written. One that fits only some is said in the run report."""
    unfit = [f.path for root, f in todo if not pattern_fits(f.path, root, pattern)]
    if not unfit:
        return []
    summary = f"path_pattern {pattern.pattern!r} matched {len(todo) - len(unfit)} of {len(todo)} photos"
    if len(unfit) == len(todo):
        raise FinprintError(
            f"{summary} (e.g. {printable_path(unfit[0])}): their site, date and encounter would be "
            "guessed. Fix path_pattern (finprint.toml or FINPRINT_PATH_PATTERN) to match the layout."
        )
    return [f"{summary}; the others (e.g. {printable_path(unfit[0])}) got their fields by folder convention"]


@dataclass(frozen=True)
class SpeciesSorted:
    """Tonight's photos of the catalogue's species, the species it holds, and what was said."""

    todo: list[tuple[Path, FoundFile]]
    species_folder: str | None
    notes: list[str]


def of_one_species(
    pattern: PathPattern | None, todo: list[tuple[Path, FoundFile]], species_folder: str | None
) -> SpeciesSorted:
    """A catalogue holds one species (its model, threshold and exports are of one): with a
    {species} field in the path pattern, photos under another species' folder are left out and
    counted. Without a species chosen, the first night's only {species} value becomes the
    catalogue's; several on that night are refused before anything is written."""
    if pattern is None or "{species}" not in pattern.pattern:
        return SpeciesSorted(todo, species_folder, [])
    species_of = [parse_path_fields(found.path, root, pattern).species for root, found in todo]
    counts = Counter(name for name in species_of if name is not None)
    notes = []
    if species_folder is None:
        if len(counts) > 1:
            listed = ", ".join(f"{name} ({n} photos)" for name, n in counts.most_common())
            raise FinprintError(
                f"path_pattern's {{species}} names {len(counts)} species tonight: {listed}. A catalogue "
                "holds one species (its model's threshold is fitted to one). Choose this catalogue's with "
                "`finprint settings set species_folder NAME --db CATALOGUE` and index the others into "
                "their own catalogues (--db)."
            )
        if not counts:
            return SpeciesSorted(todo, None, [])
        species_folder = next(iter(counts))
        notes.append(
            f"species_folder is now {species_folder!r}, the only {{species}} of this first night: photos "
            "under another species' folder will be left out (finprint settings shows it)"
        )
    wanted = species_folder.casefold()
    kept = [
        item for item, name in zip(todo, species_of, strict=True) if name is None or name.casefold() == wanted
    ]
    others = Counter(name for name in species_of if name is not None and name.casefold() != wanted)
    if others:
        listed = ", ".join(f"{name} ({n})" for name, n in others.most_common())
        notes.append(
            f"{sum(others.values())} photo(s) under other species' folders were left out ({listed}): this "
            f"catalogue holds {species_folder}. Index them into their own catalogue with --db."
        )
    return SpeciesSorted(kept, species_folder, notes)


def links_left_out(left_out: list[str]) -> list[str]:
    if not left_out:
        return []
    return [
        f"{len(left_out)} folder link(s) lead out of the archive and were not followed (e.g. "
        f"{left_out[0]}): their photos are not this archive's. Index that folder itself if they are."
    ]


def record_unlistable(store: Store, model_version: str, folders: list[str], result: RunResult) -> None:
    """A folder that cannot be listed is an error of the night (exit code 2), and its catalogued
    photos are not marked missing: they are unreadable, not gone."""
    folder_errors = [PhotoError(folder, _listing_failure(folder)) for folder in folders]
    if folder_errors:
        result.errors.extend(folder_errors)
        store.write_batch(result.run_id, model_version, Batch(errors=folder_errors))


def as_catalogued(roots: list[Path], walked: list[str]) -> tuple[list[Path], list[str]]:
    """Each root as the catalogue already knows its folder: one reached through a symlink (or
    by another spelling) that an earlier run walked by its own path is walked by that path, so
    that every photo keeps one path and exports list it once. Returns the roots and what was
    said about them."""
    known = []
    for text in walked:
        with contextlib.suppress(OSError):
            known.append((Path(text), Path(text).resolve(strict=True)))
    mapped, notes = [], []
    for root in roots:
        try:
            real = root.resolve(strict=True)
        except OSError:
            mapped.append(root)
            continue
        same = next(
            (
                path / real.relative_to(resolved)
                for path, resolved in known
                if real.is_relative_to(resolved) and not root.is_relative_to(path)
            ),
            None,
        )
        if same is None or same == root:
            mapped.append(root)
            continue
        mapped.append(same)
        notes.append(
            f"{root} is {same} (a symlink or another spelling of a folder this catalogue walked): "
            f"walked as {same}, so that its photos keep the paths they were catalogued under"
        )
    return mapped, notes


def refuse_non_text_roots(roots: list[Path]) -> None:
    for root in roots:
        if printable_path(root) != str(root):
            raise FinprintError(
                f"{printable_path(root)}: the folder's name is not UTF-8 text, and the catalogue keeps "
                "every path as text. Rename it (for a Latin-1 name: convmv -f latin1 -t utf8 -r --notest "
                "FOLDER) and run again."
            )


def after_the_walk(
    store: Store,
    roots: list[Path],
    *,
    found: list[tuple[Path, FoundFile]],
    known_paths: dict[str, KnownPath],
    unreadable_folders: list[str],
    relocated: dict[str, list[tuple[str, PathFields]]],
    result: RunResult,
) -> None:
    """Catalogued paths the walk did not find are marked missing; photos found only under a new
    path take that path's survey fields."""
    prefixes = [str(root) if root.is_file() else os.path.join(str(root), "") for root in roots]
    result.paths_missing = store.mark_missing(
        prefixes,
        {str(f.path) for _, f in found},
        known_paths,
        tuple(os.path.join(folder, "") for folder in unreadable_folders),
    )
    result.photos_moved = _follow_moves(store, relocated)
    if result.photos_moved:
        result.warnings.append(
            f"{result.photos_moved} catalogued photo(s) were found under a new path and no longer "
            "under their old one (a renamed folder, a moved file): their site, date and camera now "
            "come from the new path, and exports list each once, there"
        )


def _follow_moves(store: Store, relocated: dict[str, list[tuple[str, PathFields]]]) -> int:
    """Photos found tonight under new paths only (every path they had before is gone) take their
    survey date, site and camera from a new path: the latest path wins (a typo in a folder name
    corrected, a photo moved to its right site). Copies, whose old path is still there, keep
    theirs. Of several new paths, the one whose fields differ least from the photo's wins (the
    renamed folder over a copy elsewhere). Returns how many photos moved."""
    if not relocated:
        return 0
    present = store.present_paths(sorted(relocated))
    gone_from_before = {
        photo_id: arrivals
        for photo_id, arrivals in relocated.items()
        if sorted(present.get(photo_id, [])) == sorted(path for path, _ in arrivals)
    }
    current = store.survey_fields(sorted(gone_from_before))
    moved: dict[str, dict[str, Any]] = {}
    for photo_id, arrivals in gone_from_before.items():
        # Not the flank or crop: the photo's individual is of one flank and crop.
        candidates = [
            {"survey_date": fields.survey_date, "site": fields.site, "camera": fields.camera}
            for _, fields in sorted(arrivals, key=lambda arrival: arrival[0])
        ]
        before = current.get(photo_id, {})
        moved[photo_id] = min(candidates, key=lambda c: sum(c[k] != before.get(k) for k in c))
    store.set_survey_fields(moved)
    return len(moved)
