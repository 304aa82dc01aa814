#!/usr/bin/env bash
# Sets up and runs the whole test suite: lint, format, types, layer contract, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff check";   ruff check src tests bench
echo "== ruff format";  ruff format --check src tests bench
echo "== mypy --strict"; mypy --strict
echo "== import-linter"; lint-imports
echo "== pytest";       python -m pytest -W error -q "$@"
