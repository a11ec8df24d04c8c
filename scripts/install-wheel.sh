#!/bin/sh
# Build the appliance wheel and install it into a virtual environment.
#
#   scripts/install-wheel.sh VENV_DIR [EXTRAS]
#
# This is the one install path: CI (scripts/test), scripts/demo and the
# Dockerfile all run it, so what CI tests is the wheel users get. EXTRAS is a
# comma-separated list of optional-dependency groups from pyproject.toml
# ("test", "gpu", "bench", "test,bench").
#
# Dependencies come from the lock (locks/*.txt, written by scripts/lock), each
# installed with `pip --no-deps`: the same pins and the same routine
# (appliance/lockfile.py) as an offline bundle's install.sh. VENV_DIR is the
# appliance's own: packages the lock does not list are removed from it. An
# extra without a lock file (bench) is installed by pip's resolver, constrained
# by the lock.
#
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 VENV_DIR [EXTRAS]" >&2
    exit 2
fi
venv=$1
extras=${2:-}

root=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -x "$venv/bin/python" ]; then
    if [ -z "${PYTHON:-}" ]; then
        if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
    fi
    echo "install-wheel: creating $venv with $PYTHON" >&2
    "$PYTHON" -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    echo "install-wheel: $venv has $("$py" -V 2>&1); the appliance needs Python >= 3.11" >&2
    exit 1
}

# A stale wheel of another version would make the glob below ambiguous.
mkdir -p "$root/dist"
rm -f "$root"/dist/appliance-*.whl
"$py" -m pip wheel --quiet --no-deps --wheel-dir "$root/dist" "$root"

set -- "$root"/dist/appliance-*-py3-none-any.whl
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "install-wheel: expected exactly one dist/appliance-<ver>-py3-none-any.whl, found: $*" >&2
    exit 1
fi
wheel=$1
ver=$(basename "$wheel" | sed 's/^appliance-\(.*\)-py3-none-any\.whl$/\1/')
echo "install-wheel: installing appliance $ver${extras:+ [$extras]} into $venv" >&2

# lockfile.py runs by path in the venv's interpreter (-I: not the checkout on
# sys.path); it removes strays, installs the pins, then the fresh wheel.
"$py" -I "$root/appliance/lockfile.py" install --quiet --locks "$root/locks" --extras "$extras" --wheel "$wheel"
