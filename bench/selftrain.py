"""Self-training benchmarks in one command: WFST decoding against Viterbi, HMM training per
iteration and decoding, CTC training throughput (the small encoder, and fine-tuning a backbone).
Each part is its own script (so that each gets a fresh process and its own peak memory); this
runs the ones asked for, in turn.

    python bench/selftrain.py                # all four with their defaults
    python bench/selftrain.py decode ctc     # a subset
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PARTS = {"decode": "selftrain_decode.py", "hmm": "selftrain_hmm.py", "ctc": "selftrain_ctc.py",
         "finetune": "selftrain_finetune.py"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=sorted(PARTS), default=sorted(PARTS))
    args = parser.parse_args()
    here = Path(__file__).parent
    for part in args.parts:
        print(f"== {part} ==", flush=True)
        subprocess.run([sys.executable, str(here / PARTS[part])], check=True)


if __name__ == "__main__":
    main()
