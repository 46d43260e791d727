"""Wall env speed: env steps per second (dynamics + observation render) and renders per second.

Usage: python bench/env_speed.py [--seconds 1.0]. Prints one JSON object; no assertions (timings vary by
machine). Each figure is the best of three timed runs, to damp noise from other processes.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from jepa_wms.envs import make_env


def _rate(fn, seconds: float) -> float:
    """Calls per second of ``fn``, best of three runs of about ``seconds`` each."""
    best = 0.0
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(100):
                fn()
            calls += 100
        best = max(best, calls / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each timed run")
    args = parser.parse_args()
    result: dict[str, object] = {"env": "wall", "machine": platform.processor() or platform.machine()}
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.5, 1.5, size=(1024, 2))
    for size in (64, 224):
        env = make_env("wall", img_size=size)
        env.reset(seed=0)
        counter = iter(range(10**12))

        def step(env=env, counter=counter) -> None:
            i = next(counter)
            if i % 50 == 0:  # restart like a data episode, so the dot does not sit in a corner
                env.reset(seed=i)
            env.step(actions[i % len(actions)])

        state = env.get_state()
        result[f"steps_per_s_{size}"] = round(_rate(step, args.seconds))
        result[f"renders_per_s_{size}"] = round(_rate(lambda env=env, s=state: env.render_state(s), args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
