import json
import subprocess
import sys

import numpy as np
import pytest

from jepa_wms.envs import METAWORLD_TASKS, MW42_TASKS, env_names, env_spec, make_env, metaworld_env


def test_registry_has_all_50_tasks():
    names = [n for n in env_names() if n.startswith("metaworld-")]
    assert len(names) == 50 == len(METAWORLD_TASKS)
    assert {"metaworld-reach", "metaworld-reach-wall", "metaworld-push"} <= set(names)
    assert len(MW42_TASKS) == len(set(MW42_TASKS)) == 42 and set(MW42_TASKS) < set(METAWORLD_TASKS)
    spec = env_spec("jepa_wms/Metaworld-reach-wall-v0")
    assert spec.name == "metaworld-reach-wall"
    assert (spec.action_dim, spec.proprio_dim, spec.frameskip, spec.eval_steps) == (4, 4, 5, 100)
    assert spec.goal_source == "expert" and spec.state_dim == 110


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ValueError, match="metaworld-reach-wall"):
        make_env("metaworld-nope")
    with pytest.raises(ValueError, match="unknown Metaworld task 'nope'.*button-press-topdown-wall"):
        metaworld_env("nope")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['camera'\]"):
        make_env("metaworld-reach", camera="corner3")


def test_package_import_does_not_load_the_simulator():
    code = "import sys, jepa_wms.envs; print(sorted(m for m in ('mujoco', 'metaworld') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


pytest.importorskip("metaworld")


@pytest.fixture(scope="module")
def reach():
    env = make_env("metaworld-reach", img_size=32)
    start, goal = env.sample_start_goal(np.random.default_rng(3))
    yield env, start, goal
    env.close()


@pytest.fixture(scope="module")
def push():
    env = metaworld_env("push-v3", img_size=32)
    yield env
    env.close()


def _rollout(env, actions):
    steps = [env.step(a) for a in actions]
    return [(obs["pixels"], obs["proprio"], r, info["state"], info["success"]) for obs, r, _, _, info in steps]


def _assert_same(run_a, run_b):
    for a, b in zip(run_a, run_b, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("which", ["reach", "push"])
def test_state_round_trip_is_exact(which, reach, push):
    env = reach[0] if which == "reach" else push
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    for _ in range(5):
        env.step(rng.uniform(-1, 1, 4))
    saved = env.get_state()
    assert saved.dtype == np.float64 and saved.shape == (env_spec(f"metaworld-{which}").state_dim,)
    actions = [np.clip(env.expert_action() + rng.normal(0, 0.5, 4), -1, 1) for _ in range(8)]
    first = _rollout(env, actions)
    env.set_state(saved)
    np.testing.assert_array_equal(env.get_state(), saved)
    _assert_same(first, _rollout(env, actions))
    # A fresh env, reset elsewhere, reproduces the run too: the state holds the task's moved bodies/targets.
    fresh = make_env(f"metaworld-{which}", img_size=32)
    fresh.reset(seed=99)
    fresh.set_state(saved)
    fresh.set_goal(env.goal_state)  # the reward is minus the distance to the goal, which is not in the state
    _assert_same(first, _rollout(fresh, actions))
    fresh.close()


def test_render_is_deterministic_and_not_black(reach):
    env, start, goal = reach
    a, b = env.render_state(start), env.render_state(start)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.std() > 10  # a real scene, not a blank frame
    assert np.abs(env.render_state(goal).astype(int) - a).sum() > 0  # the arm moved
    big = make_env("metaworld-reach", img_size=224)
    frame = big.render_state(start)
    assert frame.shape == (224, 224, 3) and frame.std() > 10
    big.close()


def test_render_state_does_not_disturb(reach):
    env, start, goal = reach
    env.reset(options={"state": start, "goal": goal})
    env.step(np.array([1.0, 0.0, 0.0, 0.0]))
    before = env.get_state()
    env.render_state(goal)
    env.render_state(start)
    np.testing.assert_array_equal(env.get_state(), before)
    _, _, _, _, info = env.step(np.array([0.0, 1.0, 0.0, 0.0]))
    env.set_state(before)
    _, _, _, _, again = env.step(np.array([0.0, 1.0, 0.0, 0.0]))
    np.testing.assert_array_equal(info["state"], again["state"])


def test_expert_goal_source(reach):
    env, start, goal = reach
    current = env.get_state()
    start2, goal2 = env.sample_start_goal(np.random.default_rng(3))
    np.testing.assert_array_equal(start, start2)
    np.testing.assert_array_equal(goal, goal2)
    np.testing.assert_array_equal(env.get_state(), current)  # the env's own state is kept
    other, _ = env.sample_start_goal(np.random.default_rng(4))
    assert np.linalg.norm(other[36:39] - start[36:39]) > 0.01  # targets are re-drawn per seed, not frozen
    # The reach expert gets there: success at the goal, hand within a few cm of the target, not at the start.
    assert env.is_success(goal, goal) and not env.is_success(start, goal)
    assert np.linalg.norm(goal[:3] - goal[36:39]) < 0.05 < np.linalg.norm(start[:3] - start[36:39])
    assert env.distance(start, goal) == pytest.approx(np.linalg.norm(start[:3] - goal[:3]))


def test_success_proprio_and_clipping_follow_the_simulator(reach):
    env, start, goal = reach
    obs, info = env.reset(options={"state": start, "goal": goal})
    flags = []
    for _ in range(60):
        obs, reward, terminated, truncated, info = env.step(env.expert_action())
        flags.append(info["success"])
        assert info["success"] == env.is_success(info["state"], goal)
        assert reward == pytest.approx(-info["distance"]) and not (terminated or truncated)
        assert obs["proprio"].dtype == np.float32
        np.testing.assert_array_equal(obs["proprio"], info["state"][:4].astype(np.float32))
    assert any(flags) and not all(flags)
    saved = env.get_state()
    big = env.step(np.array([5.0, -5.0, 5.0, 5.0]))[4]["state"]
    env.set_state(saved)
    np.testing.assert_array_equal(env.step(np.array([1.0, -1.0, 1.0, 1.0]))[4]["state"], big)
    with pytest.raises(ValueError, match="shape"):
        env.set_state(saved[:-1])


def test_data_policy_is_a_noisy_expert(reach):
    env, start, _ = reach
    policy = env.data_policy()
    json.dumps(policy.params())
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        policy.reset(rng, start)
        runs.append(np.stack([policy(rng, start) for _ in range(20)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.all(np.abs(runs[0]) <= 1.0)
    assert policy.sigma in policy.sigmas and np.abs(runs[0] - env.expert_action(start)).max() > 0


def test_collect_metaworld(tmp_path):
    from jepa_wms.datasets import TrajectoryStore, collect

    path = collect("metaworld-reach", 2, tmp_path, episode_len=10, workers=2, img_size=32, show_progress=False)
    store = TrajectoryStore(path)
    assert store.num_episodes == 2 and store.episode_lengths.tolist() == [11, 11]
    assert store.collector["policy"] == "metaworld_noisy_expert"
    ep = store.episode(0)
    assert ep["pixels"].shape == (11, 32, 32, 3) and ep["state"].shape == (11, 108)
    np.testing.assert_allclose(ep["proprio"], ep["state"][:, :4])
    assert not np.array_equal(ep["state"], store.episode(1)["state"])


def test_direct_policy_heads_for_the_goal_and_keeps_the_default(reach):
    from jepa_wms.envs.metaworld_policy import direct_action

    env, start, _ = reach
    obs = np.asarray(start[:39], dtype=np.float64)
    toward = direct_action(obs, gripper=0.3)
    offset = obs[36:39] - obs[:3]
    # full speed along the straight line to the goal; the gripper is the expert's
    np.testing.assert_allclose(toward[:3], np.clip(10.0 * offset, -1, 1))
    assert toward[3] == 0.3 and np.dot(toward[:3], offset) > 0
    assert env.data_policy("").params() == env.data_policy("noisy_expert").params()
    assert "direct_fraction" not in env.data_policy().params()
    mixed = env.data_policy("direct")
    assert mixed.params()["direct_fraction"] == pytest.approx(1 / 3)
    # the share of direct episodes follows direct_fraction; the default policy draws exactly as before
    picks = []
    for seed in range(60):
        mixed.reset(np.random.default_rng(seed), start)
        picks.append(mixed.direct)
    assert 0.15 < np.mean(picks) < 0.55
    default = env.data_policy()
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    default.reset(rng_a, start)
    rng_b.choice(len(default.sigmas), p=default.weights)
    rng_b.standard_normal(4)
    assert rng_a.random() == rng_b.random() and not default.direct
    with pytest.raises(ValueError, match="expected one of: noisy_expert, direct"):
        env.data_policy("expret")
