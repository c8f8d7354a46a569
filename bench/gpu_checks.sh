#!/usr/bin/env bash
# Every GPU measurement issues 3 and 6 still need. A drawn task has 15 minutes of device time in all
# (machine start, every command and idle wait counted), so the essentials of both issues come first,
# in ONE command that fits the 590 s per-command limit (step limits 110+230+70+170 = 580 s):
#   bash bench/prepare_gpu_carry.sh            # here, once
#   device run: carry [".gpu-carry"], timeout_s 590, command "bash bench/gpu_checks.sh core"
#     issue 3: the GPU agreement tests and the resnet50 throughput table (350 px photos and 32 px
#     CIFAR, 10,000 each: every issue-3 target); issue 6: a GPU extraction of the CIFAR subset and
#     the 10-class C sweep against scikit-learn on all cores.
#   then, if status shows >= 6 minutes left, at once (the machine is still warm):
#   device run: carry [".gpu-carry"], timeout_s 400, command "bash bench/gpu_checks.sh more"
#     the Lite0 throughput table, the GPU search unit tests, the 100-class sweep (170+30+150 = 350 s).
# ("all" runs both.) Results land in $OUT (JSON + Markdown + logs); copy them to bench/results/ and
# docs/benchmarks.md. Steps run in order of importance, each under its own time limit, so a slow one
# cannot cost the rest, and the throughput tables are written after every row.
set -uo pipefail
cd "$(dirname "$0")/.."
PART="${1:-all}"
case "$PART" in core | more | all) ;; *) echo "usage: $0 [core|more|all]" >&2; exit 2 ;; esac
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# The checkout itself on the path, not installed: nothing is built on a machine without network.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PY:-python3}"
# STEP_LIMIT=15 PY=.venv/bin/python SKIP_INSTALL=1 bash bench/gpu_checks.sh all: a quick dry run of the arguments.
step() { local limit=${STEP_LIMIT:-$1}; shift; echo "== $* (limit ${limit}s)"; timeout "$limit" "$@" 2>&1 | tee -a "$OUT/gpu-checks.log"; }

# The wheels the machine lacks go to their own folder on the path, as the device README does it: the
# image's Python may not take installs into its own site-packages, and nothing there is replaced.
if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu-carry/wheels/*.whl || { echo "carried wheels did not install" >&2; exit 1; }
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# The device machine has no ../shared: the carried copy of the real data stands in. Never replace a
# ../shared/data that exists (on the development machine it is the only copy).
if [ ! -d ../shared/data ] && [ -d .gpu-carry/shared-data ]; then
  mkdir -p ../shared && cp -r .gpu-carry/shared-data ../shared/data
fi
mkdir -p /tmp/cifar && unzip -q -o ../shared/data/cifar10/train_2000_per_class.zip -d /tmp/cifar
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || true

if [ "$PART" != more ]; then
  # Issue 3: the agreement tests (nvJPEG vs PIL, GPU path vs the CPU reference), compile vs eager,
  # auto batch size, a real OOM back-off; then the resnet50 throughput table (docs/benchmarks.md
  # "GPU: to be measured") on 10,000 JPEGs of each kind, with featurekit beside a CPU decode share
  # (featurekit_hybrid). model_eager and featurekit_cpu_decode are left out for time.
  step 110 $PY -m pytest -q -s -m gpu tests/integration/test_extract_gpu_path.py
  step 230 $PY bench/extract_throughput.py --make-photos /tmp/photos --count 10000 \
    --images /tmp/cifar/train --limit 10000 --backbones resnet50 \
    --batch-size 256 --featurekit-batch-size auto --workers 16 --featurekit-hybrid-share 0.35 \
    --skip model_eager,featurekit_cpu_decode \
    --json "$OUT/extract-h200-resnet50.json" --markdown "$OUT/extract-h200-resnet50.md"
  # Issue 6: the features (a real extraction on the GPU), then the C sweep against scikit-learn on
  # all cores.
  step 70 $PY -m featurekit extract /tmp/cifar/train --backbone tf_efficientnet_lite0 \
    --out /tmp/cifar20k_lite0.h5 --batch-size auto --no-progress
  step 170 $PY bench/search_speed.py --cache /tmp/cifar20k_lite0.h5 --classes 10 \
    --json "$OUT/search-h200-10.json" --markdown "$OUT/search-h200-10.md"
fi
if [ "$PART" != core ]; then
  step 170 $PY bench/extract_throughput.py --make-photos /tmp/photos --count 10000 \
    --images /tmp/cifar/train --limit 10000 --backbones tf_efficientnet_lite0 \
    --batch-size 256 --featurekit-batch-size auto --workers 16 --featurekit-hybrid-share 0.35 \
    --skip model_eager,featurekit_cpu_decode,naive \
    --json "$OUT/extract-h200-lite0.json" --markdown "$OUT/extract-h200-lite0.md"
  step 30 $PY -m pytest -q -s -m gpu tests/unit/test_search_gpu.py
  if [ ! -f /tmp/cifar20k_lite0.h5 ]; then  # "more" on a fresh machine
    step 70 $PY -m featurekit extract /tmp/cifar/train --backbone tf_efficientnet_lite0 \
      --out /tmp/cifar20k_lite0.h5 --batch-size auto --no-progress
  fi
  step 150 $PY bench/search_speed.py --cache /tmp/cifar20k_lite0.h5 --classes 100 \
    --json "$OUT/search-h200-100.json" --markdown "$OUT/search-h200-100.md"
fi
echo "== done ($PART)"
