#!/usr/bin/env bash
# Install what is missing, build gradsim with its tests, run the whole suite (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1  # cache hits across clones
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
cd build && ctest --output-on-failure -j "$(nproc)"
