#!/usr/bin/env bash
# Every GPU measurement issues 3 and 6 still need, in two device commands that each fit the 590 s
# per-command limit (step limits: extract 120+250+170 = 540 s, search 100+300+30+150 = 580 s):
#   bash bench/prepare_gpu_carry.sh            # here, once
#   device run: carry [".gpu-carry"], timeout_s 590, command "bash bench/gpu_checks.sh extract"   (issue 3)
#   device run: carry [".gpu-carry"], timeout_s 590, command "bash bench/gpu_checks.sh search"    (issue 6)
# ("all" runs both, for a session with the time.) Results land in $OUT (JSON + Markdown + logs); copy
# them to bench/results/ and docs/benchmarks.md. Steps run in order of importance, each under its own
# time limit, so a slow one cannot cost the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
PART="${1:-all}"
case "$PART" in extract | search | all) ;; *) echo "usage: $0 [extract|search|all]" >&2; exit 2 ;; esac
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# The checkout itself on the path: the steps run even if the editable install below cannot build
# offline (it needs setuptools >= 68 without build isolation).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PY:-python3}"
# STEP_LIMIT=15 PY=.venv/bin/python SKIP_INSTALL=1 bash bench/gpu_checks.sh all: a quick dry run of the arguments.
step() { local limit=${STEP_LIMIT:-$1}; shift; echo "== $* (limit ${limit}s)"; timeout "$limit" "$@" 2>&1 | tee -a "$OUT/gpu-checks.log"; }

if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps .gpu-carry/wheels/*.whl
  $PY -m pip install -q --no-deps --no-build-isolation -e . || $PY -m pip install -q --no-deps -e .
fi
# The device machine has no ../shared: the carried copy of the real data stands in. Never replace a
# ../shared/data that exists (on the development machine it is the only copy).
if [ ! -d ../shared/data ] && [ -d .gpu-carry/shared-data ]; then
  mkdir -p ../shared && cp -r .gpu-carry/shared-data ../shared/data
fi
mkdir -p /tmp/cifar && unzip -q -o ../shared/data/cifar10/train_2000_per_class.zip -d /tmp/cifar
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || true

if [ "$PART" != search ]; then
  # Issue 3: the agreement tests (nvJPEG vs PIL, GPU path vs the CPU reference), compile vs eager,
  # auto batch size, a real OOM back-off; then the throughput table (docs/benchmarks.md "GPU: to be
  # measured") on 10,000 JPEGs of each kind, with featurekit beside a CPU decode share
  # (featurekit_hybrid). model_eager and featurekit_cpu_decode are left out for time.
  step 120 $PY -m pytest -q -s -m gpu tests/integration/test_extract_gpu_path.py
  step 250 $PY bench/extract_throughput.py --make-photos /tmp/photos --count 10000 \
    --images /tmp/cifar/train --limit 10000 --backbones resnet50 \
    --batch-size 256 --featurekit-batch-size auto --workers 16 --featurekit-hybrid-share 0.35 \
    --skip model_eager,featurekit_cpu_decode \
    --json "$OUT/extract-h200-resnet50.json" --markdown "$OUT/extract-h200-resnet50.md"
  step 170 $PY bench/extract_throughput.py --images /tmp/photos --images /tmp/cifar/train --limit 10000 \
    --backbones tf_efficientnet_lite0 \
    --batch-size 256 --featurekit-batch-size auto --workers 16 --featurekit-hybrid-share 0.35 \
    --skip model_eager,featurekit_cpu_decode,naive \
    --json "$OUT/extract-h200-lite0.json" --markdown "$OUT/extract-h200-lite0.md"
fi
if [ "$PART" != extract ]; then
  # Issue 6: the features (a real extraction on the GPU), the C sweep against scikit-learn on all
  # cores, the GPU solver's test, then 100 classes.
  step 100 $PY -m featurekit extract /tmp/cifar/train --backbone tf_efficientnet_lite0 \
    --out /tmp/cifar20k_lite0.h5 --batch-size auto --no-progress
  step 300 $PY bench/search_speed.py --cache /tmp/cifar20k_lite0.h5 --classes 10 \
    --json "$OUT/search-h200-10.json" --markdown "$OUT/search-h200-10.md"
  step 30 $PY -m pytest -q -s -m gpu tests/unit/test_search_gpu.py
  step 150 $PY bench/search_speed.py --cache /tmp/cifar20k_lite0.h5 --classes 100 \
    --json "$OUT/search-h200-100.json" --markdown "$OUT/search-h200-100.md"
fi
echo "== done ($PART)"
