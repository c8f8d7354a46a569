#!/usr/bin/env bash
# Every GPU measurement issues 3 and 6 still need, in ONE device command (about 8 minutes on an H200):
#   bash bench/prepare_gpu_carry.sh            # here, once
#   device run: carry [".gpu-carry"], timeout_s 590, command "bash bench/gpu_checks.sh"
# Results land in $OUT (JSON + Markdown + logs); copy them to bench/results/ and docs/benchmarks.md.
# Steps run in order of importance, each under its own time limit, so a slow one cannot cost the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# The checkout itself on the path: the steps run even if the editable install below cannot build
# offline (it needs setuptools >= 68 without build isolation).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PY:-python3}"
# STEP_LIMIT=15 PY=.venv/bin/python SKIP_INSTALL=1 bash bench/gpu_checks.sh: a quick dry run of the arguments.
step() { local limit=${STEP_LIMIT:-$1}; shift; echo "== $* (limit ${limit}s)"; timeout "$limit" "$@" 2>&1 | tee -a "$OUT/gpu-checks.log"; }

if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps .gpu-carry/wheels/*.whl
  $PY -m pip install -q --no-deps --no-build-isolation -e . || $PY -m pip install -q --no-deps -e .
  mkdir -p ../shared && rm -rf ../shared/data && cp -r .gpu-carry/shared-data ../shared/data
fi
mkdir -p /tmp/cifar && unzip -q -o ../shared/data/cifar10/train_2000_per_class.zip -d /tmp/cifar
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || true

# Issue 6: the features (a real extraction on the GPU), then the C sweep against scikit-learn (16 cores).
step 120 $PY -m featurekit extract /tmp/cifar/train --backbone tf_efficientnet_lite0 --out /tmp/cifar20k_lite0.h5 \
  --batch-size auto --no-progress
step 240 $PY bench/search_speed.py --cache /tmp/cifar20k_lite0.h5 --classes 10 \
  --json "$OUT/search-h200-10.json" --markdown "$OUT/search-h200-10.md"
step 60 $PY -m pytest -q -s -m gpu tests/unit/test_search_gpu.py tests/integration/test_extract_gpu_path.py
# Issue 3: extraction throughput, the issue's columns in one run (see docs/benchmarks.md "GPU: to be
# measured"), on 10,000 JPEGs of each kind, plus featurekit with a CPU decode share (featurekit_hybrid).
# model_eager and featurekit_cpu_decode are left out for time (each is another compile or pass).
step 330 $PY bench/extract_throughput.py --make-photos /tmp/photos --count 10000 \
  --images /tmp/cifar/train --limit 10000 --backbones resnet50,tf_efficientnet_lite0 \
  --batch-size 256 --featurekit-batch-size auto --workers 15 --featurekit-hybrid-share 0.4 \
  --skip model_eager,featurekit_cpu_decode \
  --json "$OUT/extract-h200.json" --markdown "$OUT/extract-h200.md"
# Issue 6, 100 classes (featurekit only if time is short: scikit-learn's 100-class sweep is the slowest part).
step 200 $PY bench/search_speed.py --cache /tmp/cifar20k_lite0.h5 --classes 100 \
  --json "$OUT/search-h200-100.json" --markdown "$OUT/search-h200-100.md"
echo "== done"
