#!/usr/bin/env bash
# GPU check (issue 13.4) on a lent GPU machine: install the wheels carried in .whl/ (faiss-cpu,
# npy-append-array, soundfile, cffi, pycparser; bench/README.md says how to fetch them), then run
# bench/gpu_check.py and keep its table and rows under $OUT (or here). Arguments go to the script.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/w2vu-site .whl/*.whl
  export PYTHONPATH="/tmp/w2vu-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
out="${OUT:-.}"
"$py" bench/gpu_check.py --json "$out/gpu_check.json" "$@" 2>&1 | tee "$out/gpu_check.txt"
