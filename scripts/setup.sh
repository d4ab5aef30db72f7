#!/usr/bin/env bash
# Set up a fresh machine for harness: a venv in .venv with the CPU build of torch and the package.
#   bash scripts/setup.sh          # enough to train: python -m harness.run
#   bash scripts/setup.sh --test   # also what the tests need: Debian's slurm-wlm/munge/slurmdbd and chromium,
#                                  # a local SLURM cluster and the PostgreSQL server on 127.0.0.1:5432 (as root)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
# torch first, pinned: a looser requirement with no torch installed pulls a multi-GB CUDA build.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

if [[ ${1:-} == --test ]]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v slurmctld >/dev/null || missing+=(slurm-wlm slurmdbd munge)
  if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  fi
  bash scripts/slurm_cluster.sh start
fi
echo "setup: done (.venv/bin/python -m harness.run)"
