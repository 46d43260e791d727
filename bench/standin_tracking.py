"""How far the stand-in's hand moves per model step against the commanded DROID delta; prints one JSON object.

Reads datasets collected from the ``franka-tabletop-*`` envs (``jepa-wms collect``): row t holds the commanded action
a_t (Δxyz m, ΔEuler rad, gripper) and the hand pose before and after it (``/proprio``: xyz, extrinsic Euler xyz,
gripper closure). For every step with a command of at least ``--min-cmd`` (m, or rad for rotations) it reports the
gain along the command, (achieved · commanded) / |commanded|², and the achieved motion off that axis; rotations use
the pose delta R′Rᵀ as Euler angles, as the DROID readers do. A gain of 1 means a model trained on recorded pose
deltas (what DROID data holds) plans in the units the env executes.

    python bench/standin_tracking.py runs/droid_sim/collect_reach runs/droid_sim/collect_place
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from jepa_wms.datasets import TrajectoryStore
from jepa_wms.datasets.pose_actions import pose_deltas


def _steps(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(commanded (N, 7), achieved pose deltas (N, 7)) over every step of every episode."""
    with TrajectoryStore(path, preload=False) as store:
        if not store.env.startswith("franka-tabletop"):
            raise SystemExit(f"{path}: env {store.env!r}; expected a franka-tabletop dataset")
        cmd, got = [], []
        for start, length in zip(store.episode_starts.tolist(), store.episode_lengths.tolist(), strict=True):
            rows = np.arange(start, start + length)
            cmd.append(np.asarray(store.actions[rows[:-1]], np.float64))
            got.append(pose_deltas(np.asarray(store.proprio[rows], np.float64)))
    return np.concatenate(cmd), np.concatenate(got)


def _gain(cmd: np.ndarray, got: np.ndarray, min_cmd: float) -> dict[str, float]:
    norm2 = np.square(cmd).sum(1)
    keep = norm2 >= min_cmd**2
    c, g = cmd[keep], got[keep]
    gain = (g * c).sum(1) / norm2[keep]
    off = np.linalg.norm(g - gain[:, None] * c, axis=1)
    return {
        "steps": int(keep.sum()),
        "gain_median": float(np.median(gain)),
        "gain_p10": float(np.quantile(gain, 0.1)),
        "gain_p90": float(np.quantile(gain, 0.9)),
        "off_axis_median": float(np.median(off)),
        "command_median": float(np.median(np.sqrt(norm2[keep]))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="franka-tabletop dataset folders")
    ap.add_argument("--min-cmd", type=float, default=0.01, help="smallest command counted (m, or rad)")
    args = ap.parse_args()
    parts = [_steps(p) for p in args.data]
    cmd, got = np.concatenate([c for c, _ in parts]), np.concatenate([g for _, g in parts])
    # Per axis: least-squares gain of achieved on commanded over all steps.
    per_axis = (got[:, :6] * cmd[:, :6]).sum(0) / np.maximum(np.square(cmd[:, :6]).sum(0), 1e-12)
    print(
        json.dumps(
            {
                "data": args.data,
                "steps": len(cmd),
                "xyz": _gain(cmd[:, :3], got[:, :3], args.min_cmd),
                "rot": _gain(cmd[:, 3:6], got[:, 3:6], args.min_cmd),
                "per_axis_gain": [round(float(v), 3) for v in per_axis],
                "achieved_step_median_m": float(np.median(np.linalg.norm(got[:, :3], axis=1))),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
