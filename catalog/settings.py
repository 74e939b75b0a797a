"""Settings: flags > FINPRINT_* environment variables > finprint.toml > defaults."""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from catalog.errors import FinprintError
from catalog.store.rows import QueryResult
from catalog.vocabulary import KeypointDetector

DEFAULT_MODEL_PATH = Path(__file__).parent / "models" / "default.onnx"
SETTINGS_FILE_NAME = "finprint.toml"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know that is not the photos themselves."""

    db_path: Path = Path("finprint.duckdb")
    model_path: Path = DEFAULT_MODEL_PATH
    # None means: use the threshold in the model card.
    distance_threshold: float | None = None
    # Half-width of the review band around the threshold, as a fraction of the threshold.
    review_band_fraction: float = 0.1
    neighbours_k: int = 10
    batch_size: int = 32
    workers: int = 0  # 0 means one per CPU core
    scientific_name: str = "Symphodus melops"
    # Darwin Core Archive metadata (eml.xml) that GBIF requires of a dataset.
    dataset_publisher: str = "finprint catalogue"
    dataset_contact_email: str | None = None
    # One of the three licences GBIF accepts: CC0-1.0, CC-BY-4.0, CC-BY-NC-4.0.
    dataset_licence: str = "CC-BY-4.0"
    dataset_language: str = "en"
    # Who took the photos (a survey team or a person): Darwin Core recordedBy.
    recorded_by: str | None = None
    # How survey fields sit in paths below an archive root, e.g. "{date}_{site}/{camera}/*".
    path_pattern: str | None = None
    # With a {species} field in path_pattern: the one species folder name this catalogue holds
    # (a catalogue's model, threshold and exports are of one species); photos under another are
    # left out. Unset, the first night's only {species} value is taken and kept.
    species_folder: str | None = None
    # Verify each new photo's shortlist by keypoints, when OpenCV and the model's fusion file exist.
    verify: bool = True
    # What finds and matches the keypoints: sift (OpenCV) or xfeat (a learned network shipped
    # with finprint, run by onnxruntime). Each needs its own fitted fusion beside the model.
    detector: str = "sift"
    # At the end of each night, gather tonight's photos of one animal into groups and decide each
    # group against the catalogue as a whole (catalog.encounters).
    group_encounters: bool = True
    # After each finished night, keep a copy of the catalogue beside it (<db>.last-night.bak): the
    # way back when the file is damaged, costing one file copy a night.
    nightly_backup: bool = True
    # Not a setting: (name, where it came from) of each value given by a flag, the environment or
    # a settings file rather than left to the catalogue or the default.
    given: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def source_of(self, name: str) -> str | None:
        """Where this value came from (`--flag`, `FINPRINT_X`, a file), None when not given."""
        return dict(self.given).get(name)


# What decides the catalogue's contents, and is kept in it by `index` (from a settings file or the
# environment, not from a one-night flag), so that a run from cron, from another folder or without
# the settings file decides and exports as the archive was indexed.
CATALOGUE_SETTINGS = (
    "path_pattern",
    "species_folder",
    "scientific_name",
    "distance_threshold",
    "review_band_fraction",
    "neighbours_k",
    "verify",
    "detector",
    "group_encounters",
    "dataset_publisher",
    "dataset_contact_email",
    "dataset_licence",
    "dataset_language",
    "recorded_by",
)
CONFIG_ENVIRONMENT_VARIABLE = "FINPRINT_CONFIG"
# How a value read from finprint.toml in the working folder (not named by --config or
# FINPRINT_CONFIG) says where it came from: such a file may belong to another catalogue.
FOUND_HERE = "(found in the working folder)"
DETECTORS = tuple(kind.value for kind in KeypointDetector)


_BOOLEAN_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def _boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text not in _BOOLEAN_WORDS:
        raise ValueError(f"{name} must be true or false, not {raw!r}")
    return _BOOLEAN_WORDS[text]


def _path(raw: Any) -> Path:
    return Path(str(raw)).expanduser()


# The setting's declared type (as its annotation text says it) -> how a file or variable's value
# becomes one; anything else is text.
_CONVERTERS: tuple[tuple[str, Callable[[Any], Any]], ...] = (("Path", _path), ("float", float), ("int", int))


def _coerce(name: str, raw: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = str(kinds[name])
    if raw is None:
        return None
    if "bool" in kind:
        return _boolean(name, raw)
    for marker, convert in _CONVERTERS:
        if marker in kind:
            return convert(raw)
    return str(raw)


def _settings_file(
    config: Path | None, settings_file: Path | None, environ: dict[str, str]
) -> tuple[Path, str]:
    """The settings file to read, and how its values say where they came from: --config, else
    FINPRINT_CONFIG (both must exist), else `settings_file` or finprint.toml in this folder (read
    only if it exists, and said to be found there)."""
    if config is None and environ.get(CONFIG_ENVIRONMENT_VARIABLE):
        config = Path(environ[CONFIG_ENVIRONMENT_VARIABLE]).expanduser()
    if config is not None:
        if not config.is_file():
            raise FinprintError(
                f"{config}: settings file not found. Check --config or {CONFIG_ENVIRONMENT_VARIABLE}."
            )
        return config, str(config)
    found = settings_file or Path(SETTINGS_FILE_NAME)
    return found, f"{found} {FOUND_HERE}"


def _from_file(settings_file: Path, names: set[str]) -> dict[str, Any]:
    """The settings a TOML file gives (at its top or under [finprint]); none when it is absent."""
    if not settings_file.is_file():
        return {}
    try:
        from_file = tomllib.loads(settings_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FinprintError(f"{settings_file}: not valid TOML ({exc}). Fix or remove it.") from exc
    table: dict[str, Any] = from_file.get("finprint", from_file)
    unknown = sorted(set(table) - names)
    if unknown:
        raise FinprintError(
            f"{settings_file}: unknown setting(s) {', '.join(unknown)}. "
            f"Known settings: {', '.join(sorted(names))}."
        )
    return dict(table)


def load_settings(
    overrides: dict[str, Any] | None = None,
    settings_file: Path | None = None,
    environ: dict[str, str] | None = None,
    config: Path | None = None,
) -> Settings:
    """Resolve settings from their sources, most specific first. The settings file is `config`
    (--config), else FINPRINT_CONFIG, both of which must exist; else `settings_file` (default
    finprint.toml in this folder) when it exists."""
    environ = dict(os.environ) if environ is None else environ
    settings_file, file_origin = _settings_file(config, settings_file, environ)
    names = {f.name for f in fields(Settings)} - {"given"}
    values = _from_file(settings_file, names)
    origin = dict.fromkeys(values, file_origin)
    for name in names:
        env_value = environ.get(f"FINPRINT_{name.upper()}")
        if env_value is not None:
            values[name] = env_value
            origin[name] = f"FINPRINT_{name.upper()}"
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
            origin[name] = f"--{name.replace('_', '-')}"
    coerced: dict[str, Any] = {}
    for name, value in values.items():
        try:
            coerced[name] = _coerce(name, value)
            _check_range(name, coerced[name])
        except ValueError as exc:
            raise FinprintError(f"{name} from {origin.get(name, 'settings')}: {exc}") from exc
    return replace(Settings(), **coerced, given=tuple(sorted(origin.items())))


def with_catalogue_settings(settings: Settings, stored: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Fill in what the catalogue keeps (`stored`, as `to_remember` made it) wherever no flag,
    variable or named settings file gave a value, and say where one gave another value. A
    finprint.toml merely found in the working folder never overrules the catalogue: it may be
    another archive's (`finprint settings set` changes a catalogue's setting for good)."""
    filled: dict[str, Any] = {}
    overruled: set[str] = set()
    notes = []
    for name, value in stored.items():
        if name not in CATALOGUE_SETTINGS:
            continue
        kept = _coerce(name, value)
        source = settings.source_of(name)
        given = getattr(settings, name)
        if source is None:
            filled[name] = kept
        elif given == kept:
            continue
        elif source.endswith(FOUND_HERE):
            filled[name] = kept
            overruled.add(name)
            notes.append(
                f"{name} is {_shown(given)} in {source}, where this catalogue keeps {_shown(kept)}: the "
                f"catalogue's value is used. To change it for good: finprint settings set {name} "
                f"{_shown(given)}; or name the file with --config."
            )
        else:
            lasting = "for this run only" if _is_flag(source) else "kept from now on"
            notes.append(
                f"{name} is {_shown(given)} (from {source}) where this catalogue was "
                f"indexed with {_shown(kept)}: {lasting}"
            )
    given_now = tuple((name, source) for name, source in settings.given if name not in overruled)
    return replace(settings, **filled, given=given_now), notes


def to_remember(settings: Settings) -> dict[str, Any]:
    """The catalogue settings a settings file or the environment gave this run (flags are for one
    run), as JSON-ready values."""
    return {
        name: getattr(settings, name)
        for name in CATALOGUE_SETTINGS
        if (source := settings.source_of(name)) is not None and not _is_flag(source)
    }


def _is_flag(source: str) -> bool:
    """A value from the command line (`--name`), as against a settings file or a variable."""
    return source.startswith("--")


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value)


def known_setting(name: str) -> None:
    """Refuse a name that is not a setting a catalogue keeps, listing those that are."""
    if name not in CATALOGUE_SETTINGS:
        raise FinprintError(
            f"{name}: not a setting a catalogue keeps. These are: {', '.join(CATALOGUE_SETTINGS)}."
        )


def parse_setting(name: str, raw: str) -> Any:
    """A catalogue setting's value from its text (as `finprint settings set` is given it)."""
    known_setting(name)
    try:
        value = _coerce(name, raw)
        _check_range(name, value)
    except ValueError as exc:
        raise FinprintError(f"{name}: {exc}") from exc
    return value


def default_of(name: str) -> Any:
    """What a setting is when nothing gives it."""
    return getattr(Settings(), name)


GBIF_LICENCES = ("CC0-1.0", "CC-BY-4.0", "CC-BY-NC-4.0")
# Bounds a value must keep: outside them a run silently catalogues nothing, or everything as one.
_INT_RANGES = {"neighbours_k": (1, 1000), "batch_size": (1, 4096), "workers": (0, 1024)}


def _check_range(name: str, value: Any) -> None:
    if name == "distance_threshold" and value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive, finite distance, not {value!r}")
    if name == "review_band_fraction" and not (math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"must be a fraction from 0 up to (not including) 1, not {value!r}")
    if name == "detector" and value not in DETECTORS:
        raise ValueError(f"must be one of {', '.join(DETECTORS)}, not {value!r}")
    if name == "dataset_licence" and value not in GBIF_LICENCES:
        raise ValueError(
            f"must be one of the licences GBIF accepts ({', '.join(GBIF_LICENCES)}), not {value!r}"
        )
    if name in _INT_RANGES:
        low, high = _INT_RANGES[name]
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, not {value!r}")


def settings_listing(kept: QueryResult) -> QueryResult:
    """Every catalogue setting with the value a run uses: the kept one (from the `settings`
    query), else finprint's default, saying which."""
    by_name = {row["name"]: row for row in kept.records()}
    rows = []
    for name in CATALOGUE_SETTINGS:
        row = by_name.get(name)
        if row is None:
            rows.append((name, _shown(default_of(name)), "finprint's default", None, None))
        else:
            rows.append(
                (name, _shown(json.loads(row["value"])), row["source"], row["run_id"], row["changed_at"])
            )
    return QueryResult(["name", "value", "source", "since_run", "changed_at"], rows)
