#!/usr/bin/env bash
# Install gradsim into a temporary prefix, build the example plugins (one of each kind) out of
# tree against the installed package, check them with the installed `gradsim gradcheck` and
# run a spec that uses them all: built-in plugins found with no flags, the examples through
# --plugin-dir.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/plugins/examples" -B "$tmp/ex" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/ex" >/dev/null
gs="$tmp/prefix/bin/gradsim"
# (output captured first: grep -q would stop reading early and fail the pipe)
grep -q "activation relu" <<<"$("$gs" plugins)"
grep -q "activation cube .*gradsim-cube.so 1.0.0" <<<"$("$gs" --plugin-dir "$tmp/ex" plugins)"
grep -q "^5 of 5 plugins pass" <<<"$("$gs" --plugin-dir "$tmp/ex" gradcheck cube ntk_dense sparse huber layer_scale)"
cat > "$tmp/ex.textproto" <<'SPEC'
base {
  network { depth: 3 width: 8 layer { name: "ntk_dense" } activation { name: "cube" } }
  init { name: "sparse" params { name: "k" number: 4 } }
  loss { name: "huber" }
  mitigations { name: "layer_scale" }
}
SPEC
"$gs" --plugin-dir "$tmp/ex" run "$tmp/ex.textproto" -o "$tmp/t.pb" -q
grep -q "3 x ntk_dense(8) + cube" <<<"$("$gs" inspect "$tmp/t.pb")"
(cd "$tmp" && "$gs" run -q -o default.pb)   # the default spec, from the installed share/
echo "install test: ok"
