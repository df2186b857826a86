#!/usr/bin/env bash
# Debian/Ubuntu packages w2vu uses beyond PyPI.
#   install-system-packages.sh          what the pipeline needs: ffmpeg decodes formats libsndfile
#                                       cannot read (m4a/aac, wma, webm, ...); cmake, a C++ compiler
#                                       and the Boost/Eigen/bz2/lzma/zlib headers build the kenlm
#                                       Python module and, for the LM parity test, KenLM's lmplz.
#   install-system-packages.sh --tests  also what only the tests use: chromium renders the HTML
#                                       report in its test; slurm and munge run the one-node
#                                       cluster of the Slurm profile's test.
# The test packages stay out of `make demo`: with a Slurm client on the machine, every Snakemake
# start runs `scontrol` (the Slurm executor plugin does at import), which costs nothing without a
# slurm.conf but waits ~10 s where a configured controller does not answer.
# Installed when we are root (or have passwordless sudo); otherwise the missing ones are named
# and set-up goes on: w2vu itself runs without them.
set -euo pipefail
packages=(ffmpeg cmake g++ zlib1g-dev libboost-program-options-dev libboost-system-dev
          libboost-thread-dev libboost-test-dev libeigen3-dev libbz2-dev liblzma-dev)
if [ "${1:-}" = "--tests" ]; then
  packages+=(chromium slurmctld slurmd slurm-client munge)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "note: not root; install these for full format support: apt-get install ${missing[*]}" >&2
  exit 0
fi
command -v apt-get >/dev/null || { echo "note: no apt-get; install: ${missing[*]}" >&2; exit 0; }
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
