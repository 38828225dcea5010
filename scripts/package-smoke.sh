#!/usr/bin/env bash
# Build the sdist and the wheel, install the wheel (not editable) into a new venv, and run the installed
# `minerwatch` from an empty folder outside the source tree: --version, rules show, detect on the bundled samples,
# test. Usage: scripts/package-smoke.sh [WORKDIR]  (default: a new temporary folder)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
PY="${PYTHON:-python3}"
"$PY" -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/python" -m pip install --quiet build
"$WORK/build-venv/bin/python" -m build --sdist --wheel --outdir "$WORK/dist" "$REPO" >/dev/null
ls -l "$WORK/dist"
"$PY" -m venv "$WORK/wheel-venv"
"$WORK/wheel-venv/bin/python" -m pip install --quiet "$WORK"/dist/minerwatch-*.whl
MW="$WORK/wheel-venv/bin/minerwatch"
RUN="$WORK/elsewhere"
mkdir -p "$RUN"
cd "$RUN"
"$MW" --version
"$MW" rules show >/dev/null
"$MW" rules show aws-ioc-hunt-crypto-mining >/dev/null
"$MW" detect --state "$RUN/state.db" --out "$RUN/alerts.jsonl" --format table
test -s "$RUN/alerts.jsonl"
"$MW" test
echo "package smoke test passed: wheel installed and run from $RUN"
