"""Keypoint verification: describing, matching, fusion, and deciding on fused scores."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from catalog import fusion as fusion_module
from catalog import verify
from catalog.fusion import Fusion
from catalog.identify import Identifier, Verification
from catalog.vocabulary import Caution

pytestmark = pytest.mark.skipif(not verify.available(), reason="OpenCV is not installed")


def _pattern(seed: int, size: tuple[int, int] = (480, 240)) -> Image.Image:
    """A skin-like pattern of random blotches and spots, different for every seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", size, 128)
    draw = ImageDraw.Draw(image)
    for _ in range(90):
        x, y = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        r = rng.uniform(3, 14)
        draw.ellipse((x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r), fill=int(rng.integers(0, 256)))
    return image


def _photographed_again(image: Image.Image, angle_degrees: float, scale: float) -> Image.Image:
    turned = image.rotate(angle_degrees, resample=Image.Resampling.BILINEAR, fillcolor=128)
    return turned.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)


def test_the_same_pattern_rotated_and_scaled_keeps_many_inliers_a_different_one_few() -> None:
    fish = _pattern(1)
    again = verify.describe(_photographed_again(fish, 12, 0.8))
    original = verify.describe(fish)
    stranger = verify.describe(_pattern(2))
    same = verify.match(again, original)
    different = verify.match(again, stranger)
    assert same.inliers >= 25
    assert different.inliers <= 8
    # The drawn lines join inlier pairs, in each image's own pixels.
    assert same.lines.shape == (same.inliers, 4)
    assert (same.lines[:, 2] <= original.size[0]).all()


def test_features_survive_the_catalogue_round_trip() -> None:
    features = verify.describe(_pattern(3))
    again = verify.LocalFeatures.from_bytes(features.to_bytes())
    assert len(features) > 50
    np.testing.assert_array_equal(again.points, features.points)
    np.testing.assert_array_equal(again.descriptors, features.descriptors)
    assert again.size == features.size


def test_a_blank_photo_has_no_keypoints_and_matches_nothing() -> None:
    blank = verify.describe(Image.new("RGB", (300, 200), (90, 90, 90)))
    assert len(blank) == 0
    assert verify.match(blank, verify.describe(_pattern(4))).inliers == 0


def _pairs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    same = rng.random(4000) < 0.2
    distances = np.where(same, rng.normal(0.45, 0.12, 4000), rng.normal(0.85, 0.12, 4000))
    inliers = np.where(same, rng.poisson(18, 4000), rng.poisson(2, 4000)).astype(float)
    return distances, inliers, same


def test_fused_decision_never_accepts_more_different_pairs_than_the_embedding() -> None:
    distances, inliers, same = _pairs(np.random.default_rng(0))
    fitted = fusion_module.fit(
        fusion_module.LabelledPairs(distances, inliers, same), 0.5, "m1", verify.DETECTOR
    )
    accepted = fitted.accepts(distances, inliers, 0.5)
    assert (accepted & ~same).sum() <= (distances[~same] < 0.5).sum()
    # The inliers carry evidence, so the fused rule finds more of the same-fish pairs.
    assert (accepted & same).sum() > (distances[same] < 0.5).sum()
    # More inliers raise P(same); more distance lowers it.
    assert fitted.probability(0.6, 20) > fitted.probability(0.6, 0)
    assert fitted.probability(0.4, 5) > fitted.probability(0.8, 5)


def test_keypoints_never_join_a_pair_farther_apart_than_same_animal_pairs_reach() -> None:
    distances, inliers, same = _pairs(np.random.default_rng(2))
    # Two sets: in "tight" the same-animal pairs lie close; in "loose" (a weak embedding) far.
    groups = np.where(np.arange(len(same)) % 2 == 0, "tight", "loose")
    distances = np.where((groups == "loose") & same, distances + 0.3, distances)
    fitted = fusion_module.fit(
        fusion_module.LabelledPairs(distances, inliers, same, groups=groups), 0.5, "m1", verify.DETECTOR
    )
    tight_reach = np.quantile(distances[same & (groups == "tight")], fusion_module.REACH_QUANTILE)
    # The set whose re-sightings lie closest decides: the loose set cannot open the gate for all.
    assert fitted.keypoint_reach == pytest.approx(tight_reach)
    assert fitted.reach(0.5) < np.quantile(
        distances[same & (groups == "loose")], fusion_module.REACH_QUANTILE
    )
    # A far pair with many inliers scores high, yet is not joined: review at most.
    assert fitted.score(1.2, 200) > fitted.score_threshold
    assert not fitted.accepts(1.2, 200, 0.5)
    assert fitted.accepts(fitted.reach(0.5) - 0.01, 200, 0.5)
    # The fit reports, per set, what the reach did to its pairs, and fit-verification prints it.
    loose = fitted.fitted_on["per_set"]["loose"]
    assert loose["same_accepted_fused"] < loose["same_accepted_fused_without_reach"]
    from rich.console import Console

    from catalog.report import fit_figures_table

    console = Console(width=200, record=True)
    console.print(fit_figures_table(fitted.fitted_on, fitted.keypoint_reach))
    printed = console.export_text()
    assert f"reach {fitted.keypoint_reach:.3f}" in printed
    assert "loose" in printed and "tight" in printed and str(loose["same_accepted_fused"]) in printed


def test_a_verification_file_without_a_reach_lets_keypoints_only_confirm(tmp_path: Path) -> None:
    distances, inliers, same = _pairs(np.random.default_rng(3))
    fitted = fusion_module.fit(
        fusion_module.LabelledPairs(distances, inliers, same), 0.5, "v", verify.DETECTOR
    )
    path = tmp_path / "old.verify.json"
    raw = json.loads(json.dumps(dataclasses.asdict(fitted)))
    del raw["keypoint_reach"]  # as files fitted before the reach existed
    path.write_text(json.dumps(raw), encoding="utf-8")
    old = fusion_module.Fusion.load(path)
    assert old.keypoint_reach is None
    assert old.reach(0.5) == 0.5
    assert not old.accepts(0.55, 200, 0.5)


def test_fitting_needs_both_kinds_of_pair() -> None:
    with pytest.raises(Exception, match="both same-individual and different-individual"):
        fusion_module.fit(
            fusion_module.LabelledPairs(np.array([0.1, 0.2]), np.array([3.0, 4.0]), np.array([True, True])),
            0.5,
            "m",
            "d",
        )


def test_sidecar_is_used_only_for_its_own_model_and_detector(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    distances, inliers, same = _pairs(np.random.default_rng(1))
    fusion_module.fit(fusion_module.LabelledPairs(distances, inliers, same), 0.5, "v1", verify.DETECTOR).save(
        fusion_module.sidecar_path(model)
    )
    assert fusion_module.load_for_model(model, "v1", verify.DETECTOR) is not None
    assert fusion_module.load_for_model(model, "v2", verify.DETECTOR) is None
    assert fusion_module.load_for_model(model, "v1", "orb-500") is None


def _hand_fusion() -> Fusion:
    # Weights of the order a fit on synthetic fish gives: score = -2.4 - 6.5 d + 2.5 log(1 + inliers);
    # keypoints may join up to a distance of 0.7.
    return Fusion("m", verify.DETECTOR, -6.5, 2.5, -2.4, 1.4, shortlist_k=5, keypoint_reach=0.7)


def _add_strangers(identifier: Identifier, *patterns: int) -> None:
    """Other individuals, far from every query, to weigh keypoints against."""
    for number, seed in enumerate(patterns, start=2):
        vector = np.zeros((1, 4), np.float32)
        vector[0, number % 4] = -1.0
        identifier.add("*/*", [f"stranger-{seed}"], [f"FP-{number:06d}"], vector)


def _identifier(features: dict[str, verify.LocalFeatures], fusion: Fusion | None = None) -> Identifier:
    verification = Verification(
        fusion or _hand_fusion(), lambda ids: {i: features[i] for i in ids if i in features}
    )
    return Identifier(dim=4, distance_threshold=0.4, review_band_fraction=0.1, neighbours_k=5,
                      verification=verification)  # fmt: skip


def test_keypoints_rescue_a_resighting_the_embedding_alone_would_call_new() -> None:
    fish = _pattern(5)
    catalogued = verify.describe(fish)
    strangers = {f"stranger-{seed}": verify.describe(_pattern(seed)) for seed in (11, 12)}
    identifier = _identifier({"photo-a": catalogued, **strangers})
    identifier.add("*/*", ["photo-a"], ["FP-000001"], np.array([[1.0, 0.0, 0.0, 0.0]], np.float32))
    _add_strangers(identifier, 11, 12)
    # Distance 0.55: beyond the 0.4 threshold, so embeddings alone would make a new fish.
    query = np.array([1.0 - 0.55, 0.0, 0.0, 0.0], np.float32)
    without = Identifier(dim=4, distance_threshold=0.4, review_band_fraction=0.1, neighbours_k=5)
    without.add("*/*", ["photo-a"], ["FP-000001"], np.array([[1.0, 0.0, 0.0, 0.0]], np.float32))
    assert without.assign("*/*", query).individual_id is None
    decision = identifier.assign("*/*", query, verify.describe(_photographed_again(fish, 8, 0.9)))
    assert decision.individual_id == "FP-000001"
    assert decision.inliers is not None and decision.inliers >= 25
    assert decision.probability is not None and decision.probability > 0.8


def test_a_pair_far_apart_in_the_embedding_with_many_inliers_goes_to_review_not_to_a_match() -> None:
    fish = _pattern(5)
    strangers = {f"stranger-{seed}": verify.describe(_pattern(seed)) for seed in (11, 12)}
    # As the shipped fit came out: no weight on the distance, so inliers alone would decide.
    inliers_alone = Fusion("m", verify.DETECTOR, 0.0, 1.35, -1.34, 2.48, shortlist_k=5, keypoint_reach=0.7)
    identifier = _identifier({"photo-a": verify.describe(fish), **strangers}, inliers_alone)
    identifier.add("*/*", ["photo-a"], ["FP-000001"], np.array([[1.0, 0.0, 0.0, 0.0]], np.float32))
    _add_strangers(identifier, 11, 12)
    assert inliers_alone.score(0.9, 25) > inliers_alone.score_threshold
    # Distance 0.9, past the reach of 0.7: the same keypoints that rescue at 0.55 join nothing here.
    query = np.array([0.1, 0.0, 0.0, 0.0], np.float32)
    decision = identifier.assign("*/*", query, verify.describe(_photographed_again(fish, 8, 0.9)))
    assert decision.inliers is not None and decision.inliers >= 25
    assert (decision.individual_id, decision.status) == (None, "review")
    assert decision.caution == Caution.BEYOND_REACH
    assert decision.matched_photo_id == "photo-a"


def _on_card(fish_seed: int, card: Image.Image) -> Image.Image:
    """A pattern photographed with the same colour card beside it (the card is the larger part),
    the card turned, lit and grained differently each time, as a real card never lands on the
    same pixels twice."""
    rng = np.random.default_rng(fish_seed)
    photo = Image.new("L", (520, 240), 120)
    photo.paste(_pattern(fish_seed).resize((220, 150)), (10, 45))
    # Seen from a slightly different angle each time: a shear no rotation and scale undo.
    shear = rng.uniform(0.02, 0.04) * rng.choice([-1, 1])
    tilted = card.transform(card.size, Image.Transform.AFFINE, (1, shear, 0, 0, 1, 0), fillcolor=128)
    turned = _photographed_again(tilted, rng.uniform(-10, 10), rng.uniform(0.85, 1.0))
    photo.paste(turned, (250 + int(rng.integers(0, 10)), 20 + int(rng.integers(0, 10))))
    pixels = np.asarray(photo, np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 6, (240, 520))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


def test_keypoints_on_a_card_other_individuals_were_photographed_with_count_for_nothing() -> None:
    card = _pattern(40).resize((260, 200))
    shortlisted = {f"a-{n}": verify.describe(_on_card(21, card)) for n in range(5)}
    beyond = {"b-0": verify.describe(_on_card(22, card)), "c-0": verify.describe(_on_card(23, card))}
    identifier = _identifier({**shortlisted, **beyond})
    near = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    for photo in shortlisted:
        identifier.add("*/*", [photo], ["FP-000001"], near)
    # Two other animals on the same card, beyond the shortlist of five: only references.
    identifier.add("*/*", ["b-0"], ["FP-000002"], np.array([[0.0, 1.0, 0.0, 0.0]], np.float32))
    identifier.add("*/*", ["c-0"], ["FP-000003"], np.array([[0.0, 0.0, 1.0, 0.0]], np.float32))
    query = np.array([1.0 - 0.55, 0.0, 0.0, 0.0], np.float32)
    new_animal = verify.describe(_on_card(24, card))
    raw = verify.match(new_animal, shortlisted["a-0"])
    assert raw.inliers >= 25  # the card alone agrees well
    decision = identifier.assign("*/*", query, new_animal)
    assert decision.inliers is not None and decision.inliers < raw.inliers // 3
    assert decision.individual_id is None


def test_a_photo_and_its_resized_re_encoded_copy_are_one_photograph() -> None:
    import io

    fish = _pattern(5)
    buffer = io.BytesIO()
    fish.resize((int(fish.width * 0.7), int(fish.height * 0.7))).save(buffer, "JPEG", quality=75)
    copy = Image.open(buffer).convert("RGB")
    agreement = verify.match(verify.describe(copy), verify.describe(fish))
    assert agreement.one_photograph(verify.describe(copy).size)
    # Photographed again (moved, turned, re-lit) it is a re-sighting, not one photograph.
    again = verify.match(verify.describe(_photographed_again(fish, 8, 0.9)), verify.describe(fish))
    assert again.inliers >= 25 and not again.one_photograph(verify.describe(fish).size)
    strangers = {f"stranger-{seed}": verify.describe(_pattern(seed)) for seed in (11, 12)}
    identifier = _identifier({"photo-a": verify.describe(fish), **strangers})
    identifier.add("*/*", ["photo-a"], ["FP-000001"], np.array([[1.0, 0.0, 0.0, 0.0]], np.float32))
    _add_strangers(identifier, 11, 12)
    decision = identifier.assign("*/*", np.array([0.98, 0.0, 0.0, 0.0], np.float32), verify.describe(copy))
    assert decision.caution == Caution.ONE_PHOTOGRAPH and decision.status == "review"
    assert decision.matched_photo_id == "photo-a"


def test_a_close_embedding_without_keypoint_agreement_is_not_merged() -> None:
    identifier = _identifier({"photo-a": verify.describe(_pattern(6))})
    identifier.add("*/*", ["photo-a"], ["FP-000001"], np.array([[1.0, 0.0, 0.0, 0.0]], np.float32))
    # Distance 0.38 is under the 0.4 threshold, but the skin patterns disagree (a few chance inliers).
    query = np.array([0.62, 0.0, 0.0, 0.0], np.float32)
    decision = identifier.assign("*/*", query, verify.describe(_pattern(7)))
    assert decision.inliers is not None and decision.inliers < 8
    assert (decision.individual_id, decision.status) == (None, "new")


def test_index_verifies_and_caches_keypoints(tmp_path: Path, survey_archive: Path) -> None:
    from catalog.night import index
    from catalog.settings import DEFAULT_MODEL_PATH, Settings
    from catalog.store import Store

    sidecar = fusion_module.sidecar_path(DEFAULT_MODEL_PATH)
    if not sidecar.is_file():
        pytest.skip("the default model ships without a fitted .verify.json")
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2]
    settings = Settings(db_path=tmp_path / "c.duckdb")
    result = index(settings, folders)
    assert not any("verification is off" in w for w in result.warnings)
    assert result.seconds["describe"] > 0
    with Store.open(settings.db_path, read_only=True) as store:
        photos, verified = store.read_only_sql(
            "SELECT (SELECT count(*) FROM photos), (SELECT count(*) FROM sightings WHERE inliers IS NOT NULL)"
        ).rows[0]
        features = store.keypoint_count()
    assert features == photos > 0
    # Every photo after the first of its partition was checked against candidates.
    assert verified > photos // 2


@pytest.mark.slow
def test_the_html_report_draws_the_very_keypoints_that_decided_each_match(
    tmp_path: Path, survey_archive: Path
) -> None:
    import re

    from catalog.night import index
    from catalog.report_html import matched_keypoints, run_page
    from catalog.settings import DEFAULT_MODEL_PATH, Settings
    from catalog.store import Store

    if not fusion_module.sidecar_path(DEFAULT_MODEL_PATH).is_file():
        pytest.skip("the default model ships without a fitted .verify.json")
    settings = Settings(db_path=tmp_path / "c.duckdb")
    run_id = index(settings, sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2]).run_id
    with Store.open(settings.db_path, read_only=True) as store:
        names = ("run_summary", "run_sightings", "run_errors")
        queries = [store.query(name, run_id=run_id) for name in names]
        # Every verified sighting kept its decisive keypoints: nothing is matched again.
        assert matched_keypoints(store, queries[1]) == {}
    rows = queries[1].records()
    verified = [row for row in rows if row["inliers"] and row["status"] != "new"]
    assert verified
    for row in verified:
        decisive = verify.DecisiveLines.from_bytes(bytes(row["keypoint_lines"]))
        assert len(decisive.lines) == row["inliers"]
    page = run_page(*queries, {})
    drawn = [int(n) for n in re.findall(r"(\d+) keypoints decided this match", page)]
    # The picture shows as many lines as the text says agreed, pair by pair, in the page's order.
    stated = [int(n) for n in re.findall(r"keypoints agreeing (\d+)<br>", page) if int(n) > 0]
    assert drawn == stated and len(drawn) == len(verified)
    assert "Decided by: a match needs P(same)" in page and "not the chance that a match is right" in page


def test_without_a_fitted_sidecar_index_says_verification_is_off(
    tmp_path: Path, survey_archive: Path
) -> None:
    from catalog.night import index
    from catalog.settings import DEFAULT_MODEL_PATH, Settings

    model = tmp_path / "bare.onnx"
    shutil.copy(DEFAULT_MODEL_PATH, model)
    folder = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    result = index(Settings(db_path=tmp_path / "c.duckdb", model_path=model), [folder])
    off = [w for w in result.warnings if "verification is off" in w]
    assert len(off) == 1 and "fit-verification" in off[0]
    assert result.seconds["describe"] == 0


def test_html_report_draws_lines_between_the_keypoints_that_agree(tmp_path: Path) -> None:
    import base64
    import io
    import re

    from catalog.report_html import keypoint_pair

    fish = _pattern(8).convert("RGB")
    first, second, blank = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "blank.jpg"
    fish.save(first, quality=95)
    _photographed_again(fish, 10, 0.85).convert("RGB").save(second, quality=95)
    Image.new("RGB", (300, 200), (90, 90, 90)).save(blank)
    described = [verify.describe(Image.open(path)) for path in (first, second, blank)]
    figure = keypoint_pair(str(first), str(second), described[0], described[1])
    found = re.search(r"(\d+) skin-pattern keypoints agree", figure)
    assert found is not None and int(found[1]) >= 20
    encoded = re.search(r"base64,([^']+)'", figure)
    assert encoded is not None
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded[1]))).convert("RGB")).astype(int)
    # The photos are grey; only the lines are coloured.
    assert ((drawn.max(axis=2) - drawn.min(axis=2)) > 100).sum() > 200
    assert keypoint_pair(str(first), str(blank), described[0], described[2]) == ""


def test_keypoints_agreeing_with_two_individuals_count_for_neither() -> None:
    def agreeing(*keypoints: int) -> verify.PairMatch:
        return verify.PairMatch(len(keypoints), len(keypoints), np.zeros((len(keypoints), 4), np.float32),
                                np.asarray(keypoints, dtype=np.int64))  # fmt: skip

    # Keypoints 1 and 2 also agree with FP-2's photo: a shared background, not FP-1's skin.
    matches = [agreeing(1, 2, 3, 4), agreeing(3, 4, 5), agreeing(1, 2, 9)]
    owners = ["FP-1", "FP-1", "FP-2"]
    assert verify.distinctive_inliers(matches, owners) == [2, 3, 1]
    # Two photos of one individual agreeing on the same keypoints is fine.
    assert verify.distinctive_inliers(matches[:2], owners[:2]) == [4, 3]


def test_without_opencv_index_decides_on_embeddings_and_says_so_once(
    tmp_path: Path, survey_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.night import index
    from catalog.settings import Settings

    monkeypatch.setattr(verify, "available", lambda: False)
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2]
    result = index(Settings(db_path=tmp_path / "c.duckdb"), folders)
    off = [w for w in result.warnings if "verification is off" in w]
    assert len(off) == 1 and "pip install 'finprint[verify]'" in off[0]
    assert result.photos_new > 0 and result.seconds["describe"] == 0


def test_a_photo_opencv_cannot_describe_has_no_keypoints_instead_of_stopping_the_night(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cv2

    class Broken:
        def detectAndCompute(self, pixels: np.ndarray, mask: None) -> None:
            raise cv2.error("simulated failure inside OpenCV")

    monkeypatch.setattr(verify, "_sift", lambda: Broken())
    described = verify.describe(_pattern(10))
    assert len(described) == 0


@pytest.mark.slow
def test_keypoints_evicted_from_memory_are_read_back_from_the_catalogue(
    tmp_path: Path, survey_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.night import run, tonight
    from catalog.settings import DEFAULT_MODEL_PATH, Settings
    from catalog.store import Store

    if not fusion_module.sidecar_path(DEFAULT_MODEL_PATH).is_file():
        pytest.skip("the default model ships without a fitted .verify.json")
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())[:3]

    def sightings(name: str) -> list[tuple[object, ...]]:
        settings = Settings(db_path=tmp_path / f"{name}.duckdb", batch_size=8)
        run.index(settings, folders)
        with Store.open(settings.db_path, read_only=True) as store:
            return store.read_only_sql(
                "SELECT photo_id, individual_id, status, inliers FROM sightings ORDER BY photo_id"
            ).rows

    roomy = sightings("roomy")
    monkeypatch.setattr(tonight, "_FEATURES_KEPT", 3)
    assert sightings("tight") == roomy
    assert any(inliers for *_, inliers in roomy)


def test_a_distance_that_carries_no_signal_never_gets_a_weight_that_favours_far_pairs() -> None:
    rng = np.random.default_rng(2)
    same = rng.random(4000) < 0.3
    # Same-individual pairs a little farther on average (shortlist noise), inliers informative.
    distances = np.where(same, rng.normal(0.62, 0.1, 4000), rng.normal(0.6, 0.1, 4000))
    inliers = np.where(same, rng.poisson(15, 4000), rng.poisson(2, 4000)).astype(float)
    fitted = fusion_module.fit(
        fusion_module.LabelledPairs(distances, inliers, same), 0.5, "m1", verify.DETECTOR
    )
    assert fitted.distance_weight == 0.0
    assert fitted.inlier_weight > 0
    assert fitted.probability(0.9, 5) <= fitted.probability(0.3, 5)


@pytest.mark.slow
def test_a_reindex_describes_only_the_photos_whose_keypoints_are_not_kept(
    tmp_path: Path, survey_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.night import index, reindex
    from catalog.settings import DEFAULT_MODEL_PATH, Settings
    from catalog.store import Store
    from tests.helpers import retag_model

    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, sorted(p for p in survey_archive.iterdir() if p.is_dir())[:1])
    with Store.open(settings.db_path, read_only=True) as store:
        kept = store.keypoint_count()
    assert kept > 0
    described: list[object] = []
    real_describe = verify.describe
    monkeypatch.setattr(verify, "describe", lambda image: described.append(image) or real_describe(image))
    other = tmp_path / "other.onnx"
    retag_model(DEFAULT_MODEL_PATH, other, "abcdefabcdef")
    assert reindex(Settings(db_path=settings.db_path, model_path=other)).photos_embedded == kept
    # Keypoints depend on the photo alone: the ones the catalogue keeps are not made again.
    assert described == []
    with Store.open(settings.db_path, read_only=True) as store:
        assert store.keypoint_count() == kept
