import math

import numpy as np
import pytest

pytest.importorskip("pymunk")

from jepa_wms.datasets import TrajectoryStore, collect, default_policy  # noqa: E402
from jepa_wms.envs import PUSHT_SPEC, PlanningEnv, PushTEnv, env_spec, make_env  # noqa: E402
from jepa_wms.envs.pusht import PushTSim  # noqa: E402
from jepa_wms.envs.pusht_policy import measure  # noqa: E402
from jepa_wms.envs.pusht_render import tee_cog_world, tee_polygons_world  # noqa: E402

# agent (100, 100) at rest, block origin (300, 300) turned 1 rad: the pose the legacy setter got wrong.
STATE = np.array([100.0, 100.0, 300.0, 300.0, 1.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def env():
    return PushTEnv(img_size=32)


def test_spec_and_registry():
    assert env_spec("pusht") == PUSHT_SPEC == env_spec("jepa_wms/PushT-v0")
    s = PUSHT_SPEC
    assert (s.action_dim, s.proprio_dim, s.state_dim, s.frameskip, s.eval_steps) == (2, 4, 7, 5, 30)
    assert s.goal_source == "random_action"
    e = make_env("pusht", img_size=48)
    assert isinstance(e, PlanningEnv)
    obs, info = e.reset(seed=0)
    assert obs["pixels"].shape == (48, 48, 3) and obs["pixels"].dtype == np.uint8
    assert obs["proprio"].dtype == np.float32
    np.testing.assert_allclose(obs["proprio"], info["state"][[0, 1, 5, 6]], rtol=1e-6)
    assert info["state"].shape == (7,) and info["state"].dtype == np.float64


def test_unknown_kwargs_error():
    with pytest.raises(ValueError, match="img_sizee"):
        make_env("pusht", img_sizee=64)
    with pytest.raises(ValueError, match="shape"):
        PushTEnv(img_size=16).set_state(np.zeros(5))
    with pytest.raises(ValueError, match="unknown option"):
        PushTEnv(img_size=16).reset(options={"start": STATE})


def test_exact_state_round_trip(env):
    env.set_state(STATE)
    assert np.array_equal(env.get_state(), STATE)
    # The simulator itself holds the pose to rounding: the angle was set before the position.
    np.testing.assert_allclose(env._sim.state(), STATE, atol=1e-9)
    moving = np.array([250.0, 260.0, 200.0, 380.0, 5.5, -40.0, 25.0])
    env.set_state(moving)
    assert np.array_equal(env.get_state(), moving)
    env.set_state(STATE + [0, 0, 0, 0, 2 * math.pi, 0, 0])  # angles are wrapped to [0, 2π)
    np.testing.assert_allclose(env.get_state(), STATE, atol=1e-12)


def test_stepping_and_rendering_are_deterministic(env):
    actions = np.random.default_rng(1).uniform(-0.5, 0.5, size=(15, 2))
    runs = []
    for _ in range(2):
        env.set_state(STATE)
        runs.append([env.step(a)[4]["state"] for a in actions])
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))
    # A get/set in the middle of a run does not change what follows (no hidden contact state).
    env.set_state(STATE)
    for a in actions[:7]:
        env.step(a)
    env.set_state(env.get_state())
    rest = [env.step(a)[4]["state"] for a in actions[7:]]
    np.testing.assert_allclose(np.array(rest), np.array(runs[0][7:]), atol=1e-6)
    assert np.array_equal(env.render_state(STATE), env.render_state(STATE.copy()))


def test_agent_reaches_pd_target(env):
    env.set_state(np.array([100.0, 100.0, 400.0, 300.0, 0.0, 0.0, 0.0]))
    target = np.array([200.0, 150.0])
    for _ in range(20):
        obs, _, _, _, info = env.step((target - env.get_state()[:2]) / 100.0)
    np.testing.assert_allclose(info["state"][:2], target, atol=0.5)
    assert np.linalg.norm(info["state"][5:]) < 1.0
    np.testing.assert_allclose(info["state"][2:5], [400.0, 300.0, 0.0])  # the block was never touched
    # One step from rest towards a target 100 px away covers about 30 % of the way (critically damped PD).
    env.set_state(np.array([100.0, 100.0, 400.0, 300.0, 0.0, 0.0, 0.0]))
    moved = env.step(np.array([1.0, 0.0]))[4]["state"][0] - 100.0
    assert 25.0 < moved < 35.0


def test_agent_pushes_block(env):
    # Block upright at (256, 200): its bar's underside is y = 230 at x in [196, 316], stem below to y = 320.
    # The agent comes from the left along y = 215 and hits the bar's end.
    env.set_state(np.array([150.0, 215.0, 256.0, 200.0, 0.0, 0.0, 0.0]))
    for _ in range(10):
        _, _, _, _, info = env.step(np.array([0.4, 0.0]))
    s = info["state"]
    assert s[2] > 256.0 + 20.0  # pushed to the right
    assert s[0] > 150.0 and s[0] - 15 <= s[2] - 60 + 1.0  # the agent stays behind the bar's left end
    # Pushing the bar's top edge straight through the centre of gravity translates the block without turning it.
    env.set_state(np.array([256.0, 120.0, 256.0, 200.0, 0.0, 0.0, 0.0]))
    for _ in range(8):
        s = env.step(np.array([0.0, 0.5]))[4]["state"]
    assert s[3] > 250.0 and abs(s[2] - 256.0) < 1.0
    assert min(s[4], 2 * math.pi - s[4]) < 0.01
    assert s[3] - s[1] >= 15.0 - 1.0  # the agent stays above the bar: no more overlap than the solver's slop


def test_success_rule_and_angle_wraparound(env):
    goal = np.array([100.0, 100.0, 300.0, 300.0, 0.05, 0.0, 0.0])
    near = goal + [10.0, 0.0, 0.0, 10.0, 0.0, 5.0, 5.0]
    assert env.is_success(near, goal) and env.distance(near, goal) == pytest.approx(math.sqrt(200))
    assert not env.is_success(goal + [15.0, 0.0, 0.0, 15.0, 0.0, 0.0, 0.0], goal)  # 21.2 px
    wrapped = goal.copy()
    wrapped[4] = 2 * math.pi - 0.2  # 0.25 rad away across 0 / 2π
    assert env.is_success(wrapped, goal)
    wrapped[4] = 2 * math.pi - 0.35  # 0.40 rad > π/9
    assert not env.is_success(wrapped, goal)
    a, b = goal.copy(), goal.copy()
    a[4], b[4] = math.pi - 0.1, -math.pi + 0.1  # ±π are the same angle
    assert env.is_success(a, b)
    env.reset(options={"state": near, "goal": goal})
    _, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert info["success"] and reward == -info["distance"] and not (terminated or truncated)


def test_random_action_goals_are_reachable(env):
    moved = []
    for k in range(3):
        env.set_state(STATE)
        start, goal = env.sample_start_goal(np.random.default_rng([7, k]))
        assert np.array_equal(env.get_state(), STATE)  # sampling used a scratch simulator
        assert np.all(start[5:] == 0) and np.all((start[:2] >= 50) & (start[:2] <= 462))
        corners = np.concatenate(tee_polygons_world(start[2:4], start[4]))
        assert corners.min() >= 20 and corners.max() <= 492  # the whole block starts inside the walls
        # The same draws again: a start, then eval_steps data-policy actions whose end state is the goal.
        rng = np.random.default_rng([7, k])
        start2 = env.sample_free_state(rng)
        goal2, actions = env.rollout_policy(rng, start2, PUSHT_SPEC.eval_steps)
        assert np.array_equal(start2, start) and np.array_equal(goal2, goal) and actions.shape == (30, 2)
        # Replaying the stored actions through the env's own step reproduces the goal exactly.
        env.reset(options={"state": start, "goal": goal})
        for a in actions:
            _, _, _, _, info = env.step(a)
        np.testing.assert_array_equal(info["state"], goal)
        assert info["success"] and info["distance"] == 0.0
        moved.append(np.linalg.norm(goal[:4] - start[:4]))
    assert max(moved) > 50.0  # goals are not the start


def test_render_state_does_not_disturb(env):
    env.reset(options={"state": STATE, "goal": STATE})
    before = env.render()
    other = np.array([400.0, 400.0, 150.0, 150.0, 2.0, 10.0, 10.0])
    img = env.render_state(other)
    assert np.array_equal(env.get_state(), STATE) and np.array_equal(env.render(), before)
    assert not np.array_equal(img, before)
    # Light background, a gray block and a blue agent are all there.
    assert img[0:2, 16].min() > 200  # top edge: background/wall
    assert (img[..., 2].astype(int) - img[..., 0] > 100).any()  # blue agent
    assert ((np.abs(img.astype(int) - [143, 163, 184]).max(-1)) < 10).sum() > 10  # slate-gray block fill
    big = PushTEnv(img_size=224).render_state(STATE)
    assert big.shape == (224, 224, 3) and big.std() > 5


def test_policy_pushes_the_block():
    stats = measure(lambda: PushTEnv(img_size=8).data_policy(), episodes=4, steps=60)
    # A random walk moves the block in ~4 % of steps, ~20 px per 60 steps.
    assert stats["moved"] > 0.2 and stats["path"] > 60
    assert 0.15 < stats["action_std"] < 0.26  # the reference dataset's action std is 0.20
    env = PushTEnv(img_size=8)
    policy = default_policy(env)
    assert policy.name == "pusht_noisy_push" and isinstance(policy.params(), dict)
    rng = np.random.default_rng(3)
    s = env.sample_free_state(rng)
    policy.reset(rng, s)
    acts = np.array([policy(rng, s) for _ in range(50)])
    assert np.abs(acts).max() <= 1.0


def test_scratch_sim_matches_env():
    sim = PushTSim(STATE)
    env = PushTEnv(img_size=8)
    env.set_state(STATE)
    for a in ([0.3, 0.2], [0.5, 0.5], [-0.2, 0.4]):
        sim.step(*env.pd_target(sim.state(), np.array(a)))
        env.step(np.array(a))
    np.testing.assert_array_equal(sim.state(), env.get_state())
    g = tee_cog_world(STATE[2:4], STATE[4])
    np.testing.assert_allclose(g, [300 - 45 * math.sin(1.0), 300 + 45 * math.cos(1.0)])


def test_collect_pusht(tmp_path):
    path = collect("pusht", 4, tmp_path, episode_len=20, workers=2, img_size=32, show_progress=False)
    store = TrajectoryStore(path)
    assert store.num_episodes == 4 and store.episode_lengths.tolist() == [21] * 4
    assert (store.action_dim, store.proprio_dim, store.state_dim) == (2, 4, 7)
    assert store.collector["policy"] == "pusht_noisy_push" and store.image_shape == (32, 32, 3)
    env = PushTEnv(img_size=32)
    ep = store.episode(1)
    rendered = env.render_state(ep["state"][5].astype(np.float64)).astype(int)
    assert np.abs(rendered - ep["pixels"][5]).max() <= 2
    np.testing.assert_allclose(ep["proprio"], ep["state"][:, [0, 1, 5, 6]])
