"""``bench/plan_speed.py --quick`` at a tiny size: its JSON, and its analytic FLOP count against FlopCounterMode.

No timing is asserted: only that the script runs, reports what it promises and counts FLOPs right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {
    "size",
    "grid",
    "tokens_per_frame",
    "width",
    "heads",
    "head_dim",
    "head_dim_executed",
    "dtype",
    "speedups",
    "predictor_gflop_per_plan",
    "attention_share",
    "memory_gb_per_episode_est",
    "seconds_per_plan",
    "seconds_per_episode",
    "gflop_per_s",
    "flops_counted_per_plan",
    "flops_analytic_per_plan",
}


def _run(*extra: str) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "plan_speed.py"), "--quick", "--device", "cpu", "--count-flops"]
    cmd += ["--sizes", "2", "--depth", "2", "--pred-dim", "24", "--heads", "4", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("--context", "3", "--kv-window", "2", "--episodes", "2"),
        ("--context", "3", "--per-row-context", "--keep-freed-memory"),
    ],
)
def test_quick_json_and_flops(extra: tuple[str, ...]):
    out = _run("--dtypes", "fp32,bf16", "--pad-heads", "0,8", *extra)
    assert out["bench"] == "plan_speed"
    assert out["budget"]["rollouts_per_episode"] == out["budget"]["iterations"] * out["budget"]["samples"] + 1
    rows = out["results"]
    assert [(r["dtype"], r["speedups"]["pad_heads"]) for r in rows] == [
        ("fp32", 0),
        ("fp32", 8),
        ("bf16", 0),
        ("bf16", 8),
    ]
    for row in rows:
        assert "error" not in row, row
        assert set(row) >= ROW_KEYS, ROW_KEYS - set(row)
        assert set(row["speedups"]) >= {"kv_cache", "kv_window", "shared_context", "pad_heads", "compile", "sdpa"}
        assert row["speedups"]["shared_context"] == ("--per-row-context" not in extra)
        if sys.platform == "linux":  # glibc's mallopt
            assert row["speedups"]["keep_freed_memory"] == ("--keep-freed-memory" in extra)
        # Width 24 + 16 proprio over 4 heads: head size 10, executed as 16 when padded to a multiple of 8.
        assert row["head_dim"] == 10
        assert row["head_dim_executed"] == (16 if row["speedups"]["pad_heads"] else 10)
        counted, analytic = row["flops_counted_per_plan"], row["flops_analytic_per_plan"]
        assert abs(counted - analytic) <= 0.05 * counted, (counted, analytic)
        assert row["predictor_gflop_per_plan"] > 0 and row["seconds_per_plan"] > 0


def test_profile_splits_the_plan_time():
    row = _run("--dtypes", "fp32", "--profile")["results"][0]
    split = row["time_split"]
    seconds = split["seconds"]
    assert set(seconds) == {"linear", "attention", "other"}
    assert all(v > 0 for v in seconds.values()), seconds
    # The classes share out the timed plan's seconds; the rates and the floor follow from the FLOP count.
    assert sum(seconds.values()) == pytest.approx(row["seconds_per_plan"], abs=2e-3)
    assert split["ceiling_if_only_linear"] == pytest.approx(row["seconds_per_plan"] / seconds["linear"], rel=0.02)
    floor = row["predictor_gflop_per_plan"] / split["matmul_peak_gflop_per_s"]
    assert split["floor_seconds_at_peak"] == pytest.approx(floor, rel=0.01, abs=1e-3)
