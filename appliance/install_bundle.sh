#!/bin/sh
# Install the appliance from this offline bundle: no package index, no network.
#
#   ./install.sh [VENV_DIR]        (default /opt/appliance)
#
# 1. Checks SHA256SUMS before anything else: every listed file must match, and
#    no file may be missing, extra or a link. Compare `sha256sum SHA256SUMS`
#    with the digest `appliance bundle` printed where the bundle was built.
# 2. Makes VENV_DIR with Python @PYTHON@ (PYTHON picks the interpreter), or
#    reuses it: an upgrade installs into the venv of the running release.
# 3. Runs lockfile.py (the same routine as scripts/install-wheel.sh): every
#    package in requirements.lock with pip --no-deps --no-index from wheels/,
#    then the appliance wheel; packages the lock does not list are removed.
#
# Then, for an existing home: VENV_DIR/bin/appliance migrate --home HOME.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-/opt/appliance}
want=@PYTHON@

if [ -z "${PYTHON:-}" ]; then
    if command -v "python$want" >/dev/null 2>&1; then PYTHON=python$want; else PYTHON=python3; fi
fi
"$PYTHON" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" || {
    echo "install.sh: the wheels are for Python $want; $PYTHON is $("$PYTHON" -V 2>&1) (set PYTHON=...)" >&2
    exit 1
}

echo "install.sh: checking SHA256SUMS" >&2
"$PYTHON" -I - "$here" <<'EOF'
import hashlib, os, sys
root = sys.argv[1]
listed, problems = {}, []
with open(os.path.join(root, "SHA256SUMS")) as fh:
    for n, line in enumerate(fh, 1):
        digest, sep, name = line.rstrip("\n").partition("  ")
        parts = name.split("/")
        if not sep or len(digest) != 64 or name.startswith("/") or ".." in parts or "" in parts:
            sys.exit(f"install.sh: SHA256SUMS line {n} is malformed: {line.strip()!r}")
        listed[name] = digest
for dirpath, dirnames, filenames in os.walk(root):
    for entry in dirnames + filenames:
        path = os.path.join(dirpath, entry)
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        if os.path.islink(path):
            problems.append(f"{rel}: a link")
        elif entry in filenames and rel != "SHA256SUMS" and rel not in listed:
            problems.append(f"{rel}: not in SHA256SUMS")
for name, digest in sorted(listed.items()):
    path = os.path.join(root, name)
    if not os.path.isfile(path) or os.path.islink(path):
        problems.append(f"{name}: missing")
        continue
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != digest:
        problems.append(f"{name}: checksum does not match")
if problems:
    sys.exit("install.sh: the bundle is damaged or was changed; nothing was installed:\n  "
             + "\n  ".join(problems))
print(f"install.sh: {len(listed)} files match SHA256SUMS", file=sys.stderr)
EOF

set -- "$here"/wheels/appliance-*-py3-none-any.whl
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "install.sh: expected exactly one wheels/appliance-<ver>-py3-none-any.whl, found: $*" >&2
    exit 1
fi
wheel=$1

if [ ! -x "$venv/bin/python" ]; then
    echo "install.sh: creating $venv with $PYTHON" >&2
    "$PYTHON" -m venv "$venv"
fi
"$venv/bin/python" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" || {
    echo "install.sh: $venv has $("$venv/bin/python" -V 2>&1); the wheels are for Python $want" >&2
    exit 1
}
"$venv/bin/python" -I "$here/lockfile.py" install --lock "$here/requirements.lock" \
    --find-links "$here/wheels" --wheel "$wheel"
"$venv/bin/appliance" --help >/dev/null
echo "install.sh: installed $(basename "$wheel" | sed 's/-py3-none-any\.whl$//') into $venv" >&2
echo "install.sh: upgrading? run $venv/bin/appliance migrate --home HOME before starting it" >&2
