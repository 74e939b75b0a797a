"""The recipe yardstick's training as a user would run it: the held-out fold is never seen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs the 'train' extra (pip install '.[train]')")

from catalog.modelcard import read_card
from catalog.offline.labels import read_labelled, split_by_individual

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_recipe import Recipe, key, train_and_score

TINY = (
    "tiny:backbone=small,input_height=32,input_width=64,embedding_dim=16,individuals_per_batch=4,"
    "photos_per_individual=3,validation_fraction=0.34"
)


def test_as_a_user_the_threshold_is_set_on_training_animals_and_scored_on_the_unseen_fold(
    labelled_set: Path, tmp_path: Path
) -> None:
    recipe = Recipe.parse(TINY)
    run = train_and_score(recipe, labelled_set, folds=3, fold=1, epochs=1, work=tmp_path, as_user=True)
    training_folds, held_out = split_by_individual(read_labelled(labelled_set), 0.0, seed=0, fold=1, folds=3)
    trained_on = read_card(Path(run["model"])).trained_on
    # The training folds' animals, and only theirs, were split into training and threshold-setting
    # (a third of the four: one animal; validation counts each flank and crop of it)...
    training_animals = len({p.individual for p in training_folds})
    assert training_animals == 4 and trained_on["individuals"] == training_animals - 1
    assert trained_on["validation"]["individuals"] >= 1
    # ...and the held-out fold's animals, none of them seen, are the ones scored.
    assert run["animals"] and set(run["animals"]) <= {p.individual for p in held_out}
    assert 0.0 <= run["false_match_rate"] <= 1.0 and 0.0 <= run["true_match_rate"] <= 1.0
    # A run made as a user is never taken for the same recipe's k-fold run.
    assert key(run) != key({**run, "as_user": False})
