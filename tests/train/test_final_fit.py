"""A final fit: the threshold set on held-out animals, then one more training on every animal."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (pip install '.[train]')")

from catalog.embed import Embedder  # noqa: E402
from catalog.errors import FinprintError  # noqa: E402
from catalog.modelcard import read_card  # noqa: E402
from catalog.offline.labels import read_labelled  # noqa: E402
from catalog.preprocess import preprocess  # noqa: E402
from catalog.train.loop import train  # noqa: E402
from tests.train.configs import tiny  # noqa: E402


def _embedding(model: Path, photo: Path) -> np.ndarray:
    embedder = Embedder(model)
    return embedder.embed(preprocess(photo, embedder.card.input)[None])[0]


def test_a_final_fit_learns_from_every_animal_and_ships_the_threshold_the_held_out_ones_set(
    labelled_set: Path, tmp_path: Path
) -> None:
    plain = train(tiny(labelled_set, tmp_path / "plain.onnx", epochs=2))
    final = train(tiny(labelled_set, tmp_path / "final.onnx", epochs=2, final_fit=True))
    every_photo = len(read_labelled(labelled_set))
    plain_card, final_card = read_card(tmp_path / "plain.onnx"), read_card(tmp_path / "final.onnx")
    assert plain_card.trained_on["images"] < every_photo == final_card.trained_on["images"]
    assert final_card.trained_on["final_fit"] is True and "final_fit" not in plain_card.trained_on
    # The same calibration network (same seed, same animals) set both thresholds and figures...
    assert final_card.threshold == plain_card.threshold
    assert final.validation is not None and plain.validation is not None
    assert final.validation.rank1 == plain.validation.rank1
    # ...but the network shipped is another one: it learnt the validation animals too.
    photo = read_labelled(labelled_set)[0].path
    plain_vector, final_vector = (_embedding(tmp_path / name, photo) for name in ("plain.onnx", "final.onnx"))
    assert not np.allclose(plain_vector, final_vector)
    assert (tmp_path / "final.checkpoints" / "final.pt").is_file()


def test_a_logged_training_says_each_epoch_and_the_time_left(labelled_set: Path, tmp_path: Path) -> None:
    from rich.console import Console

    log = io.StringIO()
    train(tiny(labelled_set, tmp_path / "m.onnx", epochs=2, final_fit=True), Console(file=log, width=200))
    lines = log.getvalue().splitlines()
    epochs = [line for line in lines if re.match(r"epoch \d+/", line)]
    # Cron's log: a line per epoch of each of the two trainings, each with the minutes left.
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2", "1/2", "2/2"]
    assert all(re.search(r"about \d+ min left$", line) for line in epochs)
    assert any(line.startswith("--final-fit: two trainings") for line in lines)
    # The second training has no validation animals left to score its epochs on.
    assert ["validation rank-1" in line for line in epochs] == [True, True, False, False]


def test_a_finished_final_fit_resumed_exports_the_same_network_again(
    labelled_set: Path, tmp_path: Path
) -> None:
    out = tmp_path / "final.onnx"
    train(tiny(labelled_set, out, epochs=1, final_fit=True))
    photo = read_labelled(labelled_set)[0].path
    before = _embedding(out, photo)
    out.unlink()
    train(tiny(labelled_set, out, epochs=1, final_fit=True, resume=True))
    assert np.allclose(_embedding(out, photo), before, atol=1e-6)


def test_a_final_fit_without_validation_animals_or_with_folds_is_refused_before_training(
    labelled_set: Path, tmp_path: Path
) -> None:
    for overrides in ({"folds": 3}, {"validation_fraction": 0.0}):
        with pytest.raises(FinprintError, match="--final-fit"):
            train(tiny(labelled_set, tmp_path / "m.onnx", final_fit=True, **overrides))  # type: ignore[arg-type]
    assert not (tmp_path / "m.checkpoints").exists()
