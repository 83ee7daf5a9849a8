#!/usr/bin/env bash
# Set up a Debian machine for scimflow: the system packages that are missing (as root, or
# through sudo), then the project's virtual environment (.venv) from the committed lock.
# Idempotent and quick when nothing changed. A .venv that cannot be used (its Python
# gone or of another version, or neither pip nor the pinned uv in it: what a `python3 -m
# venv` without Debian's venv support leaves) is made again; one whose install stopped
# half-way is finished (the lock's stamp is written last).
#
# Knobs: PYTHON (default python3.11), SCIMFLOW_PG_BINDIR (PostgreSQL's bin folder, if
# not Debian's /usr/lib/postgresql/*/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3.11}

say() { echo "bootstrap: $*"; }

# -- system packages ---------------------------------------------------------------
missing=()
if ! command -v "$PYTHON" >/dev/null; then
  missing+=("$(basename "$PYTHON")" "$(basename "$PYTHON")-venv")
elif ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian ships venv support (ensurepip) apart from the interpreter
  missing+=("$("$PYTHON" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')")
fi
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ -n "${SCIMFLOW_PG_BINDIR:-}" ]; then
  [ -x "$SCIMFLOW_PG_BINDIR/initdb" ] || missing+=(postgresql)
else
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian's packages"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      say "not root and no sudo: as root, run: apt-get install ${missing[*]}" >&2
      exit 1
    fi
    SUDO=(sudo)
  fi
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# -- the virtual environment ---------------------------------------------------------
stamp=.venv/.scimflow-lock
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
has_uv() { [ -x .venv/bin/uv ] && [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" = "$UV_VERSION" ]; }
usable() {
  [ "$(version .venv/bin/python)" = "$(version "$PYTHON")" ] || return 1
  has_uv || .venv/bin/python -m pip --version >/dev/null 2>&1
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && usable; then
  exit 0
fi
if [ -e .venv ] && ! usable; then
  say "making .venv again: it has no usable Python $(version "$PYTHON"), pip or uv"
  "$PYTHON" -m venv --clear .venv
elif [ ! -e .venv ]; then
  "$PYTHON" -m venv .venv
fi
say "building .venv from requirements.lock"
has_uv || .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
VIRTUAL_ENV=.venv .venv/bin/uv pip sync -q --python .venv/bin/python requirements.lock
VIRTUAL_ENV=.venv .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
echo "$want" > "$stamp"
say ".venv ready ($(.venv/bin/python --version))"
