#!/usr/bin/env bash
# GPU check (issue 13.4) on a lent GPU machine: install the wheels carried in .whl/ (faiss-cpu,
# npy-append-array, soundfile, cffi, pycparser; bench/README.md says how to fetch them) and use
# .whl/lm.phones.filtered.txt for the known-answer run when it is there, then run
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
text=()
[ -f .whl/lm.phones.filtered.txt ] && text=(--phone-text .whl/lm.phones.filtered.txt)
"$py" bench/gpu_check.py --json "$out/gpu_check.json" "${text[@]}" "$@" 2>&1 \
  | tee "$out/gpu_check.txt"
