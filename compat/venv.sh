#!/usr/bin/env bash
# Creates (or refreshes) compat/.venv from compat/python/requirements.txt: the Python clients
# for the compatibility suites, and moto's S3 server for forge-storage's S3 tests.
set -euo pipefail
COMPAT_DIR="$(cd "$(dirname "$0")" && pwd)"
VENV="$COMPAT_DIR/.venv"
REQS="$COMPAT_DIR/python/requirements.txt"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQS" "$VENV/.requirements.installed"; then
  echo "[compat] creating the Python venv" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.requirements.installed"
fi
