#!/usr/bin/env bash
# Installs the build dependencies that are missing, and only those.
# Used by both README commands (run-demo.sh and run-tests.sh).
# Non-interactive; needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v flex >/dev/null 2>&1 || need+=(flex)
command -v bison >/dev/null 2>&1 || need+=(bison)
[ -f /usr/include/cmocka.h ] || need+=(libcmocka-dev)
# libpng: test_cli reads fmviz's PNGs back; cairo draws fmviz's images,
# their text with FreeType from the DejaVu Sans files.
[ -f /usr/include/png.h ] || need+=(libpng-dev)
[ -f /usr/include/openssl/evp.h ] || need+=(libssl-dev)
[ -f /usr/include/jansson.h ] || need+=(libjansson-dev)
[ -f /usr/include/cairo/cairo.h ] || need+=(libcairo2-dev)
[ -f /usr/include/freetype2/ft2build.h ] || need+=(libfreetype-dev)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -f /usr/include/omp.h ] || ls /usr/lib/gcc/*/*/include/omp.h >/dev/null 2>&1 || need+=(libgomp1)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The Python tests' virtual environment (scripts/python-tests.sh).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
