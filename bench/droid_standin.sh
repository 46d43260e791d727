#!/usr/bin/env bash
# The DROID half of the paper on the CPU, end to end (issue 15 §6): robot data from the robosuite stand-in written in
# the DROID layout, read back by the DROID reader, a `droid_quick` model trained on it, then judged as the paper judges
# DROID models: the offline action score on held-out clips (3 eval seeds, vs the zero plan) and zero-shot planning in
# the stand-in (reach, place). Stages are resumable: each is skipped when its output exists.
#
#   bash bench/droid_standin.sh [OUT]        # default OUT=runs/droid_sim; needs `make robosuite`
#
# Sizes: N=100 episodes of 40 steps per task (100 reach-policy + 100 place-policy = 200 episodes, 128-px frames);
# the last HELD=12 of each task are held out for the action score. Env vars override: N, LEN, HELD, EVAL_EPISODES,
# SCORE_SEEDS, CONFIG (droid_keypoints, the default, or droid_quick), TRAIN (extra `key=value` training overrides). Prints one JSON object at the end (also OUT/summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/droid_sim}
N=${N:-100}; LEN=${LEN:-40}; HELD=${HELD:-12}; EVAL_EPISODES=${EVAL_EPISODES:-32}; SCORE_SEEDS=${SCORE_SEEDS:-"0 1 2"}
JW=".venv/bin/jepa-wms"
export MUJOCO_GL=${MUJOCO_GL:-egl} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
stamp() { date +%s; }
t0=$(stamp)

for task in reach place; do  # 1. collect (one process per task; they run side by side)
  [ -f "$OUT/collect_$task/trajectories.h5" ] || $JW collect --env "franka-tabletop-$task" --episodes "$N" \
    --episode-len "$LEN" --img-size 128 --workers 1 --seed 0 --out "$OUT/collect_$task" &
done
wait
t1=$(stamp)

split=$((N - HELD))  # 2. write the DROID layout: training and held-out episode folders
for task in reach place; do
  $JW export "$OUT/collect_$task" --out "$OUT/droid_train" --episodes ":$split"
  $JW export "$OUT/collect_$task" --out "$OUT/droid_heldout" --episodes "$split:"
done
for part in train heldout; do  # 3. read it back with the DROID reader (every frame: the stand-in records at 4 fps)
  [ -f "$OUT/data_$part/trajectories.h5" ] || $JW convert "$OUT/droid_$part" --out "$OUT/data_$part" --img-size 64 -o fps=4
done
t2=$(stamp)

# 4. pretrain the keypoint encoder, then the predictor on it, frozen (a finished run resumes to nothing). The end-to-end
# conv latent of droid_quick barely sees the hand here (README): CONFIG=droid_quick skips the pretraining.
CONFIG=${CONFIG:-droid_keypoints}
if [ "$CONFIG" = droid_keypoints ]; then
  $JW pretrain --config droid_keypoints_encoder --data "$OUT/data_train" --out "$OUT/pretrain" --resume
  TRAIN="model.encoder.weights=$OUT/pretrain/checkpoints/last.pt ${TRAIN:-}"
fi
$JW train --config "$CONFIG" --data "$OUT/data_train" --out "$OUT/model" --resume ${TRAIN:-}
t3=$(stamp)

for seed in $SCORE_SEEDS; do  # 5. the offline action score on held-out clips
  [ -f "$OUT/score_$seed/results.json" ] || $JW eval --protocol action-score --checkpoint "$OUT/model/checkpoints/last.pt" \
    --data "$OUT/data_heldout" --seed "$seed" --out "$OUT/score_$seed"
done
t4=$(stamp)

for task in reach place; do  # 6. zero-shot in the stand-in (its protocol: H = 3, replan every step, tighter clips)
  $JW eval --checkpoint "$OUT/model/checkpoints/last.pt" --env "franka-tabletop-$task" --episodes "$EVAL_EPISODES" \
    --out "$OUT/zeroshot_$task"
done
t5=$(stamp)

# 7. how far the hand moves per model step against the command, over the collected data
.venv/bin/python bench/standin_tracking.py "$OUT/collect_reach" "$OUT/collect_place" > "$OUT/tracking.json"

.venv/bin/python - "$OUT" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$SCORE_SEEDS" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1]); t = [int(x) for x in sys.argv[2:8]]
read = lambda p: json.loads((out / p / "results.json").read_text())
scores = [read(f"score_{s}") for s in sys.argv[8].split()]
keys = ("score", "zero_plan_score", "mean_e_xyz", "zero_plan_mean_e_xyz", "mean_e_rot", "mean_e_grip",
        "planning_seconds_per_episode")
summary = {
    "action_score": {k: [r[k] for r in scores] for k in keys},
    "zero_shot": {task: {k: read(f"zeroshot_{task}")[k] for k in ("success_rate", "episodes", "mean_final_distance",
                  "planning_seconds_per_episode", "episode_seconds")} for task in ("reach", "place")},
    "tracking": json.loads((out / "tracking.json").read_text()),
    "minutes": dict(zip(("collect", "export_convert", "train", "action_score", "zero_shot"),
                        [round((b - a) / 60, 1) for a, b in zip(t, t[1:])])),
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
EOF
