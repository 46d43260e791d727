"""`plan.planner` picks any of the library's planners for `jepa-wms eval`, with its own settings (the planners' own
construction: tests/planning/test_registry.py)."""

import json

import numpy as np
import pytest

from jepa_wms.config import ConfigError, load_config
from jepa_wms.evaluation import evaluate


def test_unknown_planner_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="cem.*mppi.*gd.*adam.*nevergrad"):
        load_config("wall", ["plan.planner=ilqr"])


@pytest.mark.parametrize("name", ["gd", "mppi"])
def test_eval_runs_with_the_planner(tiny_checkpoint, tmp_path, name):
    overrides = [f"plan.planner={name}", "plan.iterations=6", "plan.num_samples=4"]
    if name == "gd":
        overrides.append("plan.lr=100")  # the tiny model barely reacts to actions (cost gradients ~1e-4)
    res = evaluate(tiny_checkpoint, tmp_path, episodes=2, overrides=overrides, show_progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["plan"]["planner"] == name and res["episodes"] == 2
    history = np.array(json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])["cost_history"])
    assert history.shape == (6,) and np.isfinite(history).all()
    if name == "gd":
        # Gradient steps through the world model: the best cost so far must fall, not just stay put.
        assert np.all(np.diff(history) <= 0) and history[-1] < history[0]


def test_settings_of_other_planners_do_not_block_a_resume(tiny_checkpoint, tmp_path):
    base = ["plan.iterations=2", "plan.num_samples=4"]
    evaluate(tiny_checkpoint, tmp_path / "cem", episodes=1, overrides=base, show_progress=False)
    # lr is a gradient-planner setting: a CEM folder ignores it ...
    evaluate(tiny_checkpoint, tmp_path / "cem", episodes=1, overrides=[*base, "plan.lr=0.1"], show_progress=False)
    # ... and a GD folder does not.
    gd = [*base, "plan.planner=gd"]
    evaluate(tiny_checkpoint, tmp_path / "gd", episodes=1, overrides=gd, show_progress=False)
    with pytest.raises(FileExistsError, match="new --out"):
        evaluate(tiny_checkpoint, tmp_path / "gd", episodes=1, overrides=[*gd, "plan.lr=0.1"], show_progress=False)
