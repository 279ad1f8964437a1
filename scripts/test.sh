#!/usr/bin/env bash
# Install what is missing, build gradsim with its tests, run the whole suite (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
cd build && ctest --output-on-failure -j "$(nproc)"
