#!/usr/bin/env bash
# Builds gradsim and its tests with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
# and runs the whole suite there. Usage: bash scripts/sanitize.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" >/dev/null
cmake --build build-asan
cd build-asan && ctest --output-on-failure -j "$(nproc)" "$@"
