#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds tests/install/consumer.c
# against the installed copy twice: with find_package(flexmask) and with
# pkg-config. Usage: run.sh BUILD_DIR SOURCE_DIR [EXTRA_C_FLAGS]
set -euo pipefail
build=$1 src=$2 extra=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/tests/install" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_C_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64" "$work/cmake-build/consumer"
libdir=$(ls -d "$work"/prefix/lib*/pkgconfig | head -n1)
flags=$(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs flexmask)
# shellcheck disable=SC2086
cc $extra "$src/tests/install/consumer.c" -o "$work/consumer-pc" $flags
LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64" "$work/consumer-pc"
# The user docs and example masks are installed, and the installed tools'
# help points at them.
share="$work/prefix/share/flexmask"
for f in docs/cli.md docs/language.md docs/errors.md LICENSE CHANGELOG.md examples/masks/causal.mask; do
  [ -s "$share/$f" ] || { echo "not installed: share/flexmask/$f"; exit 1; }
done
real_share=$(cd "$share" && pwd -P)
"$work/prefix/bin/fmc" --help | grep -qF "$real_share" ||
  { echo "fmc --help does not name $real_share"; exit 1; }
"$work/prefix/bin/fmviz" --help | grep -qF "$real_share" ||
  { echo "fmviz --help does not name $real_share"; exit 1; }
LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64" "$work/prefix/bin/fmc" check "$share"/examples/masks/*.mask
echo "installed consumer: find_package and pkg-config builds both ran; docs and masks installed"
