#!/usr/bin/env bash
# Set up a fresh Debian machine for scimflow: system packages if missing, then the
# project's virtual environment (.venv) from the committed lock. Idempotent and quick
# when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3.11}

missing=()
command -v "$PYTHON" >/dev/null || missing+=(python3.11 python3.11-venv)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]} from Debian's packages"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

stamp=.venv/.scimflow-lock
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: building .venv from requirements.lock"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
[ -x .venv/bin/uv ] && [ "$(.venv/bin/uv --version | cut -d' ' -f2)" = "$UV_VERSION" ] \
  || .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
VIRTUAL_ENV=.venv .venv/bin/uv pip sync -q --python .venv/bin/python requirements.lock
VIRTUAL_ENV=.venv .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
echo "$want" > "$stamp"
echo "bootstrap: .venv ready ($(.venv/bin/python --version))"
