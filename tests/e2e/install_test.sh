#!/usr/bin/env bash
# Install gradsim into a temporary prefix, build the example plugin out of tree against the
# installed package, and run the installed binary with it: built-in plugins found with no
# flags, the example found through --plugin-dir.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/plugins/examples" -B "$tmp/cube" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cube" >/dev/null
gs="$tmp/prefix/bin/gradsim"
# (output captured first: grep -q would stop reading early and fail the pipe)
grep -q "activation relu" <<<"$("$gs" plugins)"
grep -q "activation cube .*gradsim-cube.so 1.0.0" <<<"$("$gs" --plugin-dir "$tmp/cube" plugins)"
cat > "$tmp/cube.textproto" <<'SPEC'
base { network { depth: 3 width: 8 activation { name: "cube" } } }
SPEC
"$gs" --plugin-dir "$tmp/cube" run "$tmp/cube.textproto" -o "$tmp/t.pb" -q
grep -q "3 x dense(8) + cube" <<<"$("$gs" inspect "$tmp/t.pb")"
(cd "$tmp" && "$gs" run -q -o default.pb)   # the default spec, from the installed share/
echo "install test: ok"
