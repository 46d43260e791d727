"""Push-T data policies compared: action and agent-velocity spread, and how much each moves and turns the block.

Usage: python bench/pusht_policies.py [--episodes 100] [--steps 100] [--seed 0] [--window 30] [--policy expert ...].
Prints one JSON object keyed by policy name (`PushTEnv.data_policies`), each holding
`jepa_wms.envs.pusht_policy.measure`'s statistics from `PushTEnv.sample_free_state` starts: action std per
component, agent-velocity std per component (px/s), the fraction of steps in which the block moves, and the
[25th, 50th, 75th] percentiles of the block's net translation (px) and |net rotation| (rad) over all ``--window``-step
windows (the distance to a `dset` evaluation goal 30 steps ahead) and over whole episodes. The reference's released
normalisation statistics are included for comparison. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import time

from jepa_wms.envs.pusht import PushTEnv
from jepa_wms.envs.pusht_policy import measure

# The statistics released with the reference Push-T dataset (its action and velocity normalisation).
REFERENCE = {"action_std_xy": [0.202, 0.200], "velocity_std_xy": [75.0, 74.0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=30, help="steps per window (evaluation goals: 30 ahead)")
    parser.add_argument("--policy", action="append", help="policy name (repeatable); default: all of them")
    args = parser.parse_args()
    env = PushTEnv(img_size=8)
    names = args.policy or list(env.data_policies())
    result: dict[str, object] = {"reference": REFERENCE}
    for name in names:
        env.data_policy(name)  # an unknown name fails here, listing the valid ones
        t0 = time.perf_counter()
        stats = measure(lambda n=name: env.data_policy(n), args.episodes, args.steps, args.seed, args.window)
        stats = {k: [round(x, 3) for x in v] if isinstance(v, list) else round(v, 3) for k, v in stats.items()}
        result[name] = {**stats, "seconds": round(time.perf_counter() - t0, 1)}
    print("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in result.items()) + "\n}")


if __name__ == "__main__":
    main()
