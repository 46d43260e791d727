"""`plan.model=simulator`: the true env as the planner's model, with or without a checkpoint."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from jepa_wms.evaluation import evaluate
from jepa_wms.planning.simulator import SimulatorModel, check_simulator_env

WALL_ACTION_STD = [0.7, 0.7]
ORACLE = ["plan.model=simulator", "plan.sim_workers=1", "plan.num_samples=64", "plan.iterations=6"]


def _wall_oracle(**kw):
    return SimulatorModel("wall", {"img_size": 16}, [0.0, 0.0], WALL_ACTION_STD, 5, workers=1, **kw)


def _replay(env, start, raw):
    env.set_state(start)
    for a in raw:
        env.step(a)
    return env.get_state()


def test_costs_are_the_env_state_cost_of_the_replayed_candidate():
    oracle = _wall_oracle()
    env = oracle._env
    start, goal = env.sample_start_goal(np.random.default_rng(3))
    cands = torch.randn(1, 5, 2, oracle.action_dim, generator=torch.Generator().manual_seed(0))
    cost = oracle.cost_fn([{"state": start}], [{"state": goal}], alpha=0.0, kind="L2")(cands)
    raw = oracle.denormalize_actions(cands).flatten(2, 3).numpy()  # (1, 5, 10, 2)
    expected = [np.sum((_replay(env, start, raw[0, s])[:2] - goal[:2]) ** 2) for s in range(5)]
    assert cost.shape == (1, 5)
    np.testing.assert_allclose(cost[0].numpy(), expected, rtol=1e-6)
    # The denormalisation really uses the stats: zero normalised actions are the mean (no motion here).
    zero = oracle.cost_fn([{"state": start}], [{"state": goal}], 0.0, "L2")(torch.zeros(1, 1, 2, oracle.action_dim))
    assert zero.item() == pytest.approx(np.sum((start[:2] - goal[:2]) ** 2))


def test_costs_do_not_depend_on_the_worker_count():
    cands = torch.randn(2, 6, 3, 10, generator=torch.Generator().manual_seed(1))
    env = _wall_oracle()._env
    pairs = [env.sample_start_goal(np.random.default_rng(i)) for i in range(2)]
    current, goal = [{"state": s} for s, _ in pairs], [{"state": g} for _, g in pairs]
    one = _wall_oracle().cost_fn(current, goal, 0.0, "L2")(cands)
    pooled = SimulatorModel("wall", {"img_size": 16}, [0.0, 0.0], WALL_ACTION_STD, 5, workers=2)
    try:
        two = pooled.cost_fn(current, goal, 0.0, "L2")(cands)
    finally:
        pooled.close()
    torch.testing.assert_close(one, two)


def test_pixel_cost_is_zero_only_at_the_goal():
    oracle = _wall_oracle(cost="pixels", proprio_mean=[32.0, 32.0], proprio_std=[10.0, 10.0])
    env = oracle._env
    start = np.array([12.0, 30.0])
    goal_state = _replay(env, start, np.full((10, 2), [1.0, 0.0]))  # 10 steps right
    env.set_state(goal_state)
    goal = {"state": goal_state, "pixels": env.render(), "proprio": goal_state.astype(np.float32)}
    right = torch.full((1, 1, 2, 10), 1.0 / WALL_ACTION_STD[0])
    right[..., 1::2] = 0.0  # y components stay at the mean
    cost = oracle.cost_fn([{"state": start}], [goal], alpha=1.0, kind="L2")
    assert cost(right).item() == pytest.approx(0.0, abs=1e-9)
    assert cost(-right).item() > 0.01


def test_a_state_cost_with_a_wrapped_angle():
    from jepa_wms.envs import make_env

    env = make_env("pusht")
    goal = np.array([100.0, 100.0, 200.0, 200.0, 2 * np.pi - 0.01, 0.0, 0.0])
    states = np.array(
        [[100.0, 100.0, 200.0, 200.0, 0.01, 5.0, 5.0], [103.0, 104.0, 200.0, 200.0, 2 * np.pi - 0.01, 0, 0]]
    )
    np.testing.assert_allclose(env.state_cost(states, goal), [(0.02 * 180 / np.pi) ** 2, 25.0], rtol=1e-9)


def test_an_env_without_exact_state_setup_is_named():
    class Blind:
        def get_state(self):
            return np.zeros(2)

    with pytest.raises(ValueError, match=r"env 'blind'.*lacks set_state, advance, state_cost, render_state"):
        check_simulator_env(Blind(), "blind")


def test_oracle_eval_without_a_checkpoint_reaches_wall_goals(tmp_path):
    res = evaluate(
        None,
        tmp_path / "oracle",
        env="wall",
        episodes=4,
        # The full CEM budget (300 x 30): smaller ones rarely find the door.
        overrides=["plan.model=simulator", "plan.sim_workers=1", "collect.episodes=8", "collect.workers=1"],
        show_progress=False,
    )
    assert res["checkpoint"] is None and res["plan"]["model"] == "simulator"
    assert (tmp_path / "oracle" / "data" / "trajectories.h5").exists()  # collected on the fly for the stats
    # A blind plan (only the zero-mean candidate, no search) is the control: the oracle's search is what succeeds.
    blind = evaluate(
        None,
        tmp_path / "blind",
        env="wall",
        data=tmp_path / "oracle" / "data",
        episodes=4,
        overrides=["plan.model=simulator", "plan.num_samples=2", "plan.num_elites=2", "plan.iterations=1"]
        + ["plan.init_std=0"],
        show_progress=False,
    )
    assert res["success_rate"] >= 0.75 > blind["success_rate"]
    assert res["mean_final_distance"] < blind["mean_final_distance"]


def test_oracle_with_a_checkpoint_uses_its_stats_and_keeps_its_own_fingerprint(tiny_checkpoint, tmp_path):
    out = tmp_path / "ev"
    res = evaluate(tiny_checkpoint, out, episodes=2, overrides=ORACLE, show_progress=False)
    assert res["plan"]["model"] == "simulator" and res["episodes"] == 2
    with pytest.raises(FileExistsError, match="another checkpoint, seed or planner setting"):
        evaluate(tiny_checkpoint, out, episodes=2, overrides=[*ORACLE, "plan.sim_cost=pixels"], show_progress=False)
    # Worker counts do not change results, so a resume with another one is accepted.
    again = evaluate(tiny_checkpoint, out, episodes=2, overrides=[*ORACLE[:1], *ORACLE[2:]], show_progress=False)
    assert again["success_rate"] == res["success_rate"]


def test_without_a_checkpoint_the_simulator_must_be_asked_for(tmp_path):
    with pytest.raises(ValueError, match="add plan.model=simulator"):
        evaluate(None, tmp_path / "x", env="wall", episodes=1, show_progress=False)
    with pytest.raises(ValueError, match="give a checkpoint, or --env/--config"):
        evaluate(None, tmp_path / "x", episodes=1, overrides=ORACLE, show_progress=False)


def test_cli_oracle_eval(tmp_path):
    base = [sys.executable, "-m", "jepa_wms.cli", "eval", "--env", "wall", "--episodes", "2", "--out", str(tmp_path)]
    small = ["plan.iterations=2", "collect.episodes=4", "collect.workers=1", "collect.img_size=16"]
    proc = subprocess.run([*base, *ORACLE, *small], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "results.json").read_text())["episodes"] == 2
    bad = subprocess.run([*base, *small], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "plan.model=simulator" in bad.stderr
