"""Named errors whose messages say which file is wrong and how to fix it."""

from __future__ import annotations

from pathlib import Path


class FinprintError(Exception):
    """A problem the user can fix; the CLI prints it on one line and exits with code 1."""


class ArchiveNotFound(FinprintError):
    """A folder given to index does not exist."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: no such folder. Check the path, or mount the disk it is on.")


class NoPhotosFound(FinprintError):
    """A folder given to index holds no photo finprint can read."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path}: no photos found (looked for .jpg, .jpeg, .png, .tif, .tiff, .webp, .bmp, .pgm, .ppm). "
            "Point finprint at the folder that holds the survey photos."
        )


class NotAnImage(FinprintError):
    """A file given by name is not an image finprint can read."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not a readable image ({reason}). Remove it from the command.")


class ModelCardError(FinprintError):
    """An ONNX file has no valid finprint model card."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(
            f"{path}: {reason}. Use a model exported by `finprint train`, or add a 'finprint' "
            "model card to its metadata (see docs/identification.md, 'The model card')."
        )


class ModelMismatch(FinprintError):
    """The catalogue was built with another model than the one given."""

    def __init__(self, db_path: Path | str, catalogue_version: str, model_version: str) -> None:
        super().__init__(
            f"{db_path}: catalogue was built with model {catalogue_version}, not {model_version}. "
            "Use the same --model, or re-embed the whole catalogue with the new one: "
            "finprint reindex --model NEW.onnx"
        )


class UnknownIndividual(FinprintError):
    """An individual id that the catalogue does not hold."""

    def __init__(self, individual_id: str, db_path: Path | str) -> None:
        super().__init__(
            f"{individual_id}: no such individual in {db_path}. "
            'List them with: finprint sql "SELECT individual_id FROM individuals"'
        )


class CatalogueNotFound(FinprintError):
    """A read command was pointed at a catalogue that does not exist yet."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(
            f"{db_path}: no catalogue here yet. Create it with: finprint index ARCHIVE --db {db_path}"
        )


class CatalogueBusy(FinprintError):
    """Another process holds the catalogue's write lock."""

    def __init__(self, db_path: Path | str, detail: str) -> None:
        super().__init__(
            f"{db_path}: the catalogue is in use by another finprint process ({detail}). "
            "Wait for it to finish, then run again."
        )


class ReadOnlyQuery(FinprintError):
    """`finprint sql` was given a statement that would change the catalogue."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"finprint sql opens the catalogue read-only and refused the statement ({reason}). "
            "Use a SELECT, or export the data first."
        )


class CatalogueWriteError(FinprintError):
    """The catalogue file could not be written (disk full, read-only folder, lost drive)."""

    def __init__(self, db_path: Path | str, detail: str) -> None:
        super().__init__(
            f"{db_path}: could not write the catalogue ({detail}). Nothing of the batch in hand was "
            "written and every finished batch is kept. Free disk space, or make the folder writable, "
            "then run the same command again."
        )


class TrainingDataError(FinprintError):
    """Labelled training data that cannot be used as given."""
