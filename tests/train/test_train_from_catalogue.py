"""train --from-catalogue: a catalogue's own decisions fine-tune its model, which then reindexes it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (pip install '.[train]')")

from catalog import decisions  # noqa: E402
from catalog.cli import EXIT_NOT_BETTER, app  # noqa: E402
from catalog.errors import FinprintError  # noqa: E402
from catalog.modelcard import read_card  # noqa: E402
from catalog.night import index  # noqa: E402
from catalog.settings import Settings  # noqa: E402
from catalog.store import Store  # noqa: E402
from catalog.synthetic import GROUND_TRUTH_FILE, read_ground_truth  # noqa: E402
from catalog.train.from_catalogue import matched_threshold, possibly_one_animal  # noqa: E402
from catalog.train.loop import TrainConfig, train  # noqa: E402
from catalog.train.nets import build_backbone  # noqa: E402
from catalog.train.onnx_weights import load_exported_weights  # noqa: E402
from exporters.selection import ExportFilter, photo_rows  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(labelled_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    config = TrainConfig(
        data_dirs=(labelled_set,),
        out_path=out,
        backbone="small",
        input_height=32,
        input_width=64,
        embedding_dim=16,
        individuals_per_batch=4,
        photos_per_individual=3,
        validation_fraction=0.34,
        epochs=2,
    )
    train(config)
    return out


def test_exported_weights_read_back_into_the_network(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    model = build_backbone("small", card.embedding.dim, card.input.channels)
    load_exported_weights(model, tiny_model, card, "small")  # raises unless torch == onnxruntime
    other = build_backbone("small", card.embedding.dim * 2, card.input.channels)
    with pytest.raises(FinprintError, match="do not fit"):
        load_exported_weights(other, tiny_model, card, "small")


def test_the_threshold_keeps_the_share_of_look_alikes_it_lets_through() -> None:
    current = np.random.default_rng(0).uniform(0.2, 2.0, 5000)
    threshold = float(np.quantile(current, 0.01))
    # Every distance stretched: the same pairs pass at the stretched threshold.
    assert matched_threshold(current, current * 1.5, threshold) == pytest.approx(threshold * 1.5, rel=1e-3)


def test_two_entries_of_one_animal_nobody_merged_are_not_taught_as_different() -> None:
    rng = np.random.default_rng(0)
    centres = {
        "fish A": np.array([1.0, 0, 0, 0]),
        "fish B": np.array([0, 1.0, 0, 0]),
        "fish C": np.array([0, 0, 1.0, 0]),
    }
    vectors, labels, encounters = [], [], []
    # Entries 0 and 1 are fish A seen on two nights and three nights; entry 2 is fish A again,
    # catalogued apart; entries 3 and 4 are fish B and C, each seen on two nights.
    for label, (fish, nights) in enumerate(
        [("fish A", 2), ("fish A", 3), ("fish A", 1), ("fish B", 2), ("fish C", 2)]
    ):
        for night in range(nights):
            for _ in range(2):
                vectors.append(centres[fish] + rng.normal(0, 0.05, 4))
                labels.append(label)
                encounters.append(f"{label}/night {night}")
    unsure, distance = possibly_one_animal(np.array(vectors), labels, encounters, [], 5)
    assert 0 < distance < 0.5  # the known re-sightings are within one fish's spread
    expected = {(0, 1), (0, 2), (1, 2)}
    assert {(a, b) for a, b in zip(*np.nonzero(unsure), strict=True) if a < b} == expected
    assert (unsure == unsure.T).all() and not unsure.diagonal().any()
    # A pair a person said differs is taught as different however near it is.
    said, _ = possibly_one_animal(np.array(vectors), labels, encounters, [(2, 0)], 5)
    assert {(a, b) for a, b in zip(*np.nonzero(said), strict=True) if a < b} == {(0, 1), (1, 2)}
    # With a single known re-sighting there is no archive-wide distance: nothing is masked.
    rows = [0, 1, 2, 3, 10, 11]  # entry 0 (two nights) and entry 2 (one)
    alone, _ = possibly_one_animal(
        np.array(vectors)[rows], [labels[i] for i in rows], [encounters[i] for i in rows], [], 5
    )
    assert not alone.any()


@pytest.fixture(scope="module")
def taught_catalogue(
    tiny_model: Path, survey_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The archive indexed with the tiny model, then put right by a person who knows the truth:
    each fish's entries merged, one wrong match rejected."""
    db = tmp_path_factory.mktemp("taught") / "survey.duckdb"
    index(Settings(db_path=db, model_path=tiny_model, verify=False), [survey_archive])
    truth = {
        str((survey_archive / row.path).resolve()): row.identity_key
        for row in read_ground_truth(survey_archive / GROUND_TRUTH_FILE)
    }
    with Store.open(db) as store:
        photos = photo_rows(store, ExportFilter())
        col = {n: photos.columns.index(n) for n in ("path", "photo_id", "individual_id")}
        rows = [
            (truth[str(Path(r[col["path"]]).resolve())], r[col["photo_id"]], r[col["individual_id"]])
            for r in photos.rows
        ]
        owner = {i: Counter(k for k, _, j in rows if j == i).most_common(1)[0][0] for _, _, i in rows}
        wrong = [p for key, p, i in rows if key != owner[i]]
        if wrong:
            decisions.reject(store, wrong[:1], "not this fish")
        entries: dict[str, list[str]] = {}
        for individual, key in sorted(owner.items()):
            entries.setdefault(key, []).append(individual)
        for keep, *others in entries.values():
            for other in others:
                decisions.merge(store, keep, other, "same fish")
    return db


@pytest.mark.slow
def test_train_from_catalogue_writes_a_card_that_names_it_and_reindexes(
    tiny_model: Path, taught_catalogue: Path, tmp_path: Path
) -> None:
    new = tmp_path / "taught.onnx"
    args = ["train", "--from-catalogue", str(taught_catalogue), "--model", str(tiny_model), "--out", str(new)]
    result = runner.invoke(app, [*args, "--epochs", "1"], env={"COLUMNS": "200"})
    assert result.exit_code in (0, EXIT_NOT_BETTER), result.output
    assert ("not better" in result.output) == (result.exit_code == EXIT_NOT_BETTER)
    card = read_card(new)
    started_from = read_card(tiny_model)
    assert card.trained_on["catalogue"] == taught_catalogue.name
    assert card.trained_on["started_from"]["model_version"] == started_from.model_version
    assert card.trained_on["decisions"]["merge"] >= 1
    assert card.input == started_from.input and card.sides == started_from.sides
    assert card.model_version != started_from.model_version and card.threshold > 0
    with Store.open(taught_catalogue, read_only=True) as store:
        before = store.sighting_states([row.photo_id for row in store.sightings_for_training()])
    reindexed = runner.invoke(app, ["reindex", "--db", str(taught_catalogue), "--model", str(new)])
    assert reindexed.exit_code == 0, reindexed.output
    with Store.open(taught_catalogue, read_only=True) as store:
        assert store.catalogue_model_versions() == [card.model_version]
        assert store.sighting_states(list(before)) == before  # every decision kept


def test_a_model_the_catalogue_was_not_indexed_with_is_refused(
    taught_catalogue: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["train", "--from-catalogue", str(taught_catalogue), "--out", str(tmp_path / "x.onnx")]
    )
    assert isinstance(result.exception, FinprintError) and "--model" in str(result.exception)
    assert not (tmp_path / "x.onnx").exists()


def test_a_new_model_is_better_only_when_the_gain_is_more_than_chance_among_few_individuals() -> None:
    from catalog.offline.metrics import reid_metrics_by_query
    from catalog.train.from_catalogue import map_gain

    rng = np.random.default_rng(5)
    individuals = [f"FP-{i}" for i in range(3) for _ in range(6)]
    encounters = [f"{name}/enc{j % 2}" for j, name in enumerate(individuals)]
    centres = {name: rng.normal(size=16) for name in sorted(set(individuals))}

    def vectors(spread: dict[str, float]) -> np.ndarray:
        rows = [centres[name] + rng.normal(size=16) * spread[name] for name in individuals]
        return np.asarray(rows) / np.linalg.norm(rows, axis=1, keepdims=True)

    def gain_of(current: np.ndarray, new: np.ndarray) -> tuple[float, float, float]:
        queries = (reid_metrics_by_query(v, individuals, encounters)[1] for v in (current, new))
        return map_gain(*queries, individuals)

    current = vectors({"FP-0": 2.0, "FP-1": 2.0, "FP-2": 2.0})
    everyone_tighter = vectors({"FP-0": 0.05, "FP-1": 0.05, "FP-2": 0.05})
    gain, low, _ = gain_of(current, everyone_tighter)
    assert gain > 0 and low > 0
    # One individual's photos gathered, another's scattered: a gain on average, which a
    # resample without the first individual does not show.
    mixed = vectors({"FP-0": 0.05, "FP-1": 2.0, "FP-2": 4.0})
    gain, low, _ = gain_of(current, mixed)
    assert gain > 0 and low <= 0


def test_a_small_catalogue_without_rejects_or_splits_fine_tunes_for_one_epoch(tmp_path: Path) -> None:
    """A few steps in all: the warm-up must not end on the first one (OneCycleLR divided by zero)."""
    from catalog.synthetic import generate_archive

    generate_archive(tmp_path / "archive", n_individuals=6, n_surveys=2, seed=4)
    db = tmp_path / "small.duckdb"
    index(Settings(db_path=db), [tmp_path / "archive"])
    with Store.open(db, read_only=True) as store:
        decided = store.read_only_sql("SELECT count(*) FROM decisions WHERE action IN ('reject', 'split')")
    assert decided.rows == [(0,)]
    result = runner.invoke(
        app, ["train", "--from-catalogue", str(db), "--out", str(tmp_path / "m.onnx"), "--epochs", "1"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code in (0, EXIT_NOT_BETTER), result.output + repr(result.exception)
    assert (tmp_path / "m.onnx").is_file()
