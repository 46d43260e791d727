#!/usr/bin/env bash
# Planning speed at paper size on one CUDA GPU (issue 17): the one script to run when a GPU is lent.
#
#   bash bench/gpu_plan.sh            # from the repository root; JSON lines to $OUT/plan_speed.jsonl, or stdout
#
# Needs nothing from the internet. Python: $PYTHON if set, else the first of .venv/bin/python, python3, python whose
# torch sees a GPU (a venv carried from a CPU-only machine has a CPU torch build and is skipped). That Python needs
# torch with CUDA plus this package's dependencies (pip install --no-index --find-links <local wheels> -e . if not);
# the repository is put on PYTHONPATH, so the package itself needs no install.
#
# Steps (each under its own `timeout`, about 7 minutes in all on an H100/H200; a step that times out loses only its
# own rows, and every finished row is also in $OUT/plan_speed.log as soon as it is done):
#   1. paper size (16×16 tokens), fp32 (TF32) and bf16, heads unpadded (25) and padded to 32, eager
#   2. the same with torch.compile of the predictor blocks, heads padded to 32
#   3. small size (8×8), fp32 and bf16, padded to 32, eager
#   4. bf16, paper size, 4 episodes batched (1,200 candidate rows), padded to 32
# Each row: seconds per CEM plan (300 × 30, H = 6, 2 context frames), predictor GFLOP per plan, GFLOP/s, the SDPA
# backends that accept the head size, peak memory, and the speed-ups that were on.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

pick_python() {
  for py in ${PYTHON:-} .venv/bin/python python3 python; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

PY=$(pick_python) || { echo '{"bench": "gpu_plan", "error": "no Python whose torch sees a CUDA GPU"}'; exit 1; }
if ! "$PY" -c "import jepa_wms.world_model" 2>/dev/null; then
  echo "{\"bench\": \"gpu_plan\", \"error\": \"$PY cannot import jepa_wms (install its dependencies from local wheels)\"}"
  exit 1
fi

DEST=/dev/stdout
LOG=/dev/stderr
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  DEST="$OUT/plan_speed.jsonl"
  LOG="$OUT/plan_speed.log"
  : >"$DEST"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1 || true

step() {  # step SECONDS ARGS...: one plan_speed.py run, its final JSON line appended to $DEST
  local limit=$1
  shift
  local start=$SECONDS
  timeout --signal=INT --kill-after=10 "$limit" "$PY" bench/plan_speed.py --device cuda "$@" >>"$DEST" 2>>"$LOG"
  local rc=$?
  echo "step rc=$rc in $((SECONDS - start)) s: $*" >>"$LOG"
  [ $rc -eq 0 ] || echo "{\"bench\": \"gpu_plan\", \"step\": \"$*\", \"rc\": $rc}" >>"$DEST"
}

step 150 --sizes paper --dtypes fp32,bf16 --pad-heads 0,32
step 180 --sizes paper --dtypes bf16,fp32 --pad-heads 32 --compile
step 50 --sizes small --dtypes fp32,bf16 --pad-heads 32
step 50 --sizes paper --dtypes bf16 --pad-heads 32 --episodes 4
echo "gpu_plan done in $SECONDS s" >>"$LOG"
