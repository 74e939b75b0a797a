"""The nightly index: walk -> decode -> embed -> identify -> write, one transaction per batch.

run.py reads top to bottom (index(), then the runner that takes each batch from decoding to the
catalogue, then the night's end: groups, links, the nightly copy); walk.py finds the files and
what moved; tonight.py is what a night identifies with; reindex.py swaps the model; outcome.py
what a run reports.
"""

from catalog.night.outcome import ProgressCallback, ReindexResult, RunResult, graph_directory
from catalog.night.reindex import reindex
from catalog.night.run import index
from catalog.night.walk import PATH_MAX_BYTES, find_files

__all__ = [
    "PATH_MAX_BYTES",
    "ProgressCallback",
    "ReindexResult",
    "RunResult",
    "find_files",
    "graph_directory",
    "index",
    "reindex",
]
