"""Env speed: env steps per second (dynamics + observation render) and renders per second, at 64 and 224 px.

Usage: python bench/env_speed.py [--env wall --env pusht ...] [--seconds 1.0]. Prints one JSON object keyed by
env; no assertions (timings vary by machine). Each figure is the best of three timed runs, to damp noise from
other processes. Envs whose simulator is not installed report the import error instead.
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


def _measure(name: str, seconds: float) -> dict[str, object]:
    result: dict[str, object] = {}
    for size in (64, 224):
        env = make_env(name, img_size=size)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        low, high = env.action_space.low, env.action_space.high
        actions = rng.uniform(low, high, size=(1024, *env.action_space.shape)).astype(np.float32)
        counter = iter(range(10**12))

        def step(env=env, counter=counter, actions=actions) -> None:
            i = next(counter)
            if i % 50 == 0:  # restart like a data episode, so the agent does not sit in a corner
                env.reset(seed=i)
            env.step(actions[i % len(actions)])

        state = env.get_state()
        result[f"steps_per_s_{size}"] = round(_rate(step, seconds))
        result[f"renders_per_s_{size}"] = round(_rate(lambda env=env, s=state: env.render_state(s), seconds))
        env.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", help="registered env name (repeatable); default: the demo envs")
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each timed run")
    args = parser.parse_args()
    result: dict[str, object] = {"machine": platform.processor() or platform.machine()}
    for name in args.env or ["wall", "pointmaze", "pusht", "metaworld-reach"]:
        try:
            result[name] = _measure(name, args.seconds)
        except ImportError as exc:
            result[name] = {"error": str(exc)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
