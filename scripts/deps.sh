#!/usr/bin/env bash
# Installs the Debian packages gradsim needs, only those missing; safe to run again.
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache pkg-config
      libboost-dev libboost-filesystem-dev libtbb-dev libprotobuf-dev protobuf-compiler zlib1g-dev
      libeigen3-dev libopenblas-pthread-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libopenmpi-dev openmpi-bin python3-protobuf
      python3-numpy python3-pandas python3-matplotlib
      clang util-linux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "gradsim: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
