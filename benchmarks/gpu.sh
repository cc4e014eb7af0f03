#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (device time is short: about 10 minutes here).
#   bash benchmarks/gpu.sh            # writes benchmarks/results/gpu.md (and the logs under $OUT when set)
# 1. the CUDA tests (they skip without a GPU elsewhere); 2. the throughput table on the GPU, N up to
# 65,536 nodes; 3. graphmeta and torch.func, eager and compiled (CUDA graphs), sinusoid and a
# 4096-node graph. Each part has its own time limit, so one slow part cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOGS=${OUT:-benchmarks/results/gpu-logs}
mkdir -p "$LOGS"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOGS/gpu.txt"

timeout 120 "$PYTHON" -m pytest -q -k "cuda" tests 2>&1 | tee "$LOGS/tests.log" | tail -3
timeout 240 "$PYTHON" benchmarks/throughput.py --device cuda --nodes 64 4096 65536 --rounds 10 \
    --output "$LOGS/throughput.md" 2>&1 | tee "$LOGS/throughput.log" | tail -12
timeout 200 "$PYTHON" benchmarks/compiled.py --device cuda --mode reduce-overhead --nodes 4096 --dag-rounds 20 \
    --output "$LOGS/compiled.md" 2>&1 | tee "$LOGS/compiled.log" | tail -16

{
  echo "# GPU results"
  echo
  echo "\`bash benchmarks/gpu.sh\` on $(head -1 "$LOGS/gpu.txt"), $(date -u +%Y-%m-%d)."
  echo
  echo "## CUDA tests"; echo; tail -1 "$LOGS/tests.log"; echo
  for part in throughput compiled; do
    [ -f "$LOGS/$part.md" ] && { sed 's/^# /## /' "$LOGS/$part.md"; echo; }
  done
} > benchmarks/results/gpu.md
cp benchmarks/results/gpu.md "$LOGS/" 2>/dev/null || true
