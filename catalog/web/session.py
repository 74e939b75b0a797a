"""What the browser review's server remembers between pages: one person's sitting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from catalog.modelcard import ModelCard
from catalog.store import Store
from catalog.web.images import Pictures
from catalog.web.pairs import Queue


@dataclass
class Session:
    """The catalogue, the keys a page must carry, the queue's order, and the decisions made."""

    db_path: Path
    card: ModelCard | None
    access_token: str
    csrf_token: str
    queue: Queue
    pictures: Pictures
    # Decisions made through this server, oldest first: what its undo key takes back.
    made: list[int] = field(default_factory=list)
    # One request at a time touches the catalogue: DuckDB lets a process hold a file one way only.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def catalogue(self, write: bool = False) -> Iterator[Store]:
        """The catalogue, open for this request only: a page left open never holds the file the
        night needs (CatalogueBusy while the night holds it)."""
        with self.lock, Store.open(self.db_path, read_only=not write) as store:
            yield store
