#!/usr/bin/env bash
# The main job: install what is missing, build gradsim (Release), run the default sweep and
# draw its figures. Usage: bash scripts/setup.sh [extra args for `gradsim run`]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1  # cache hits across clones
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
./build/bin/gradsim run -o build/traces.pb "$@"
./build/bin/gradsim plot build/traces.pb -o build/figures
echo "figures of the default sweep: build/figures/ (signal.png: the gradient norm by layer)"
