#!/usr/bin/env bash
# The Python package's tests (tests/python, pytest). Creates the virtual
# environment once (FLEXMASK_VENV, default ~/.cache/flexmask/venv, about
# 5.6 GB: torch's PyPI wheel brings CUDA libraries) with the pinned
# versions of tests/python/requirements.txt, reinstalls them only when that
# file changes, installs the package from this checkout (pip install ., which
# builds the C library with CMake) and runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FLEXMASK_VENV:-$HOME/.cache/flexmask/venv}
req=tests/python/requirements.txt
stamp="$venv/.flexmask-requirements"

if [ ! -x "$venv/bin/python" ]; then
  echo "python-tests: creating the virtual environment $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
if ! cmp -s "$req" "$stamp"; then
  echo "python-tests: installing $req (once; several GB)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
echo "python-tests: pip install . (builds libflexmask with CMake)"
# A fixed build folder keeps CMake's objects between runs.
"$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps \
  --force-reinstall -C build-dir=build-python .

set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python "$@"
rc=$?
set -e
case $rc in
  0) ;;
  5) echo "python-tests: pytest collected no tests" >&2; exit 1 ;;
  *) echo "python-tests: pytest failed (exit $rc)" >&2; exit "$rc" ;;
esac
