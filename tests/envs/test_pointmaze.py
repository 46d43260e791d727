import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported
pytest.importorskip("mujoco")
pytest.importorskip("gymnasium_robotics")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from jepa_wms.datasets import TrajectoryStore, collect  # noqa: E402
from jepa_wms.envs import POINTMAZE_SPEC, PlanningEnv, PointMazeEnv, env_spec, make_env  # noqa: E402
from jepa_wms.envs.pointmaze import (  # noqa: E402
    START_MARGIN,
    U_MAZE,
    cell_of,
    d4rl_to_env_vec,
    d4rl_to_env_xy,
    free_cells,
    in_free_space,
)


@pytest.fixture(scope="module")
def env():
    e = PointMazeEnv(img_size=32)
    yield e
    e.close()


def test_registry_and_spec():
    assert env_spec("pointmaze") == POINTMAZE_SPEC == env_spec("jepa_wms/PointMaze-v0")
    s = POINTMAZE_SPEC
    assert (s.action_dim, s.proprio_dim, s.state_dim, s.frameskip, s.eval_steps) == (2, 4, 4, 5, 30)
    assert s.goal_source == "random_state"
    e = make_env("jepa_wms/PointMaze-v0", img_size=16)
    assert isinstance(e, PlanningEnv) and e.render().shape == (16, 16, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advice about float32 spaces, not an error
        check_env(e)
    e.close()


def test_unknown_kwargs_and_bad_input_are_errors(env):
    with pytest.raises(ValueError, match="img_sizee"):
        make_env("pointmaze", img_sizee=64)
    with pytest.raises(ValueError, match="img_size"):
        PointMazeEnv(img_size=4)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match=r"\(x, y, vx, vy\)"):
        env.set_state(np.zeros(3))


def test_state_round_trip_is_exact_and_zero_action_stays(env):
    s = np.array([-0.123456789012345, 1.000000000001, 0.3, -2.7])
    env.set_state(s)
    assert np.array_equal(env.get_state(), s)
    rest = np.array([-0.7, -1.1, 0.0, 0.0])
    env.reset(options={"state": rest, "goal": rest})
    for _ in range(10):
        _, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert np.array_equal(info["state"], rest) and info["success"] and reward == 0.0
    assert not terminated and not truncated
    # A state set twice gives identical futures (solver warm start etc. do not leak across set_state).
    actions = np.random.default_rng(0).uniform(-1, 1, size=(15, 2))
    runs = []
    for _ in range(2):
        env.set_state(s)
        runs.append([env.step(a)[4]["state"] for a in actions])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_actions_are_clipped(env):
    env.set_state(np.array([-1.0, 1.0, 0.0, 0.0]))
    big = env.step(np.array([5.0, 0.0]))[4]["state"]
    env.set_state(np.array([-1.0, 1.0, 0.0, 0.0]))
    one = env.step(np.array([1.0, 0.0]))[4]["state"]
    np.testing.assert_array_equal(big, one)


def test_render_is_deterministic_and_leaves_state_alone(env):
    s = np.array([1.0, 0.0, 1.5, -0.5])
    env.reset(options={"state": s, "goal": np.array([-1.0, -1.0, 0.0, 0.0])})
    a = env.render()
    other = env.render_state(np.array([-1.2, 1.2, 0.0, 0.0]))
    assert np.array_equal(env.get_state(), s)
    b = env.render()
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, b) and a.sum() > 0 and a.std() > 5
    assert not np.array_equal(a, other)  # the ball is visible
    # The goal is not drawn: moving it changes no pixel.
    env.set_goal(np.array([1.2, 1.2, 0.0, 0.0]))
    assert np.array_equal(env.render(), a)
    # render_state must not change what the next step does.
    after = env.step(np.array([0.3, 0.7]))[4]["state"]
    env.set_state(s)
    assert np.array_equal(env.step(np.array([0.3, 0.7]))[4]["state"], after)


def test_success_rule(env):
    goal = np.array([-1.0, 1.0, 0.0, 0.0])
    assert env.is_success(goal + np.array([0.49, 0.0, 3.0, 3.0]), goal)
    assert not env.is_success(goal + np.array([0.0, 0.51, 0.0, 0.0]), goal)
    assert env.distance(goal + np.array([0.3, 0.4, 1.0, 0.0]), goal) == pytest.approx(0.5)
    assert env.distance(goal + np.array([0.0, 0.5, 0.0, 0.0]), goal) == 0.5
    assert not env.is_success(goal + np.array([0.0, 0.5, 0.0, 0.0]), goal)  # strict


def test_random_state_starts_and_goals(env):
    draws = [env.sample_start_goal(np.random.default_rng([3, k])) for k in range(300)]
    again = env.sample_start_goal(np.random.default_rng([3, 7]))
    np.testing.assert_array_equal(again[0], draws[7][0])
    np.testing.assert_array_equal(again[1], draws[7][1])
    points = np.array([p for pair in draws for p in pair])
    assert np.all(points[:, 2:] == 0.0)
    assert all(in_free_space(p[:2], START_MARGIN - 1e-12) for p in points)
    cells = [cell_of(p[:2]) for p in points]
    assert set(cells) == set(free_cells())
    # Uniform over the region: the connector cell (x > 0.5, |y| < 0.5) holds 0.6 of its 3.96 area units.
    connector = np.mean([(p[0] > 0.5 and abs(p[1]) < 0.5) for p in points])
    assert 0.11 < connector < 0.19
    assert not np.array_equal(draws[0][0], draws[1][0])


def test_walls_block(env):
    # Top-left cell; the inner wall below it has its face at y = 0.5, the outer wall above at y = 1.5.
    env.set_state(np.array([-1.0, 1.0, 0.0, -5.0]))
    ys = [env.step(np.array([0.0, -1.0]))[4]["state"][1] for _ in range(30)]
    # Soft contacts let a ball hitting at full speed sink ~0.03 into the face, then push it back out.
    assert min(ys) > 0.55 and ys[-1] == pytest.approx(0.6, abs=0.01)
    env.set_state(np.array([-1.0, 1.0, 0.0, 5.0]))
    ys = [env.step(np.array([0.0, 1.0]))[4]["state"][1] for _ in range(30)]
    assert max(ys) < 1.45 and ys[-1] == pytest.approx(1.4, abs=0.01)


def test_d4rl_geometry_matches_after_coordinate_map(env):
    """A model with D4RL's geometry (walls at (w + 1, h + 1), ball body at (1.2, 1.2)) tracks our env."""
    import mujoco

    walls = "".join(
        f'<geom type="box" pos="{w + 1.0} {h + 1.0} 0" size="0.5 0.5 0.2"/>'
        for w, row in enumerate(U_MAZE)
        for h, v in enumerate(row)
        if v == 1
    )
    motors = "".join(f'<motor joint="{j}" ctrlrange="-1 1" ctrllimited="true" gear="100"/>' for j in ("jx", "jy"))
    xml = f"""<mujoco><option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
      <default><joint damping="1" limited="false"/>
        <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/></default>
      <worldbody><body pos="1.2 1.2 0"><geom type="sphere" size="0.1" contype="1"/>
        <joint name="jx" type="slide" axis="1 0 0"/><joint name="jy" type="slide" axis="0 1 0"/></body>
        {walls}</worldbody><actuator>{motors}</actuator></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    data.qpos[:] = [0.8, 2.8]  # D4RL cell (1, 3)
    mujoco.mj_forward(model, data)
    env.set_state(np.concatenate([d4rl_to_env_xy(data.qpos), d4rl_to_env_vec(data.qvel)]))
    rng = np.random.default_rng(1)
    worst = 0.0
    for t in range(80):
        a = rng.uniform(-1, 1, 2) if t % 20 > 8 else np.sign(rng.normal(size=2))  # bursts that hit walls
        data.qvel[:] = np.clip(data.qvel, -5, 5)
        mujoco.mj_forward(model, data)
        data.ctrl[:] = a
        mujoco.mj_step(model, data, nstep=5)
        ours = env.step(d4rl_to_env_vec(a))[4]["state"]
        theirs = np.concatenate([d4rl_to_env_xy(data.qpos), d4rl_to_env_vec(data.qvel)])
        worst = max(worst, float(np.abs(ours - theirs).max()))
    assert worst < 1e-5


def test_data_policy_covers_the_maze(env):
    policy = env.data_policy()
    assert policy.name == "maze_explorer" and policy.params()["kp"] == 3.0
    visited, crossings = [], 0
    for k in range(6):
        rng = np.random.default_rng([11, k])
        env.reset(options={"state": env.sample_free_state(rng), "goal": np.zeros(4)})
        state = env.get_state()
        policy.reset(rng, state)
        cells = {cell_of(state)}
        for _ in range(100):
            action = policy(rng, state)
            assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
            state = env.step(action)[4]["state"]
            cells.add(cell_of(state))
        cells &= set(free_cells())
        visited.append(len(cells) / 7)
        crossings += {1, 3} <= {c[0] for c in cells}
    assert np.mean(visited) >= 0.8 and crossings >= 5


def test_collect_with_workers(tmp_path):
    path = collect("pointmaze", 4, tmp_path, episode_len=20, workers=2, img_size=32, show_progress=False)
    store = TrajectoryStore(path)
    assert store.num_episodes == 4 and store.episode_lengths.tolist() == [21] * 4
    assert store.collector["policy"] == "maze_explorer" and store.env_kwargs == {"img_size": 32}
    ep = store.episode(1)
    assert ep["pixels"].shape == (21, 32, 32, 3) and ep["pixels"].max() > 0
    np.testing.assert_array_equal(ep["proprio"], ep["state"])
    env = PointMazeEnv(img_size=32)
    env.set_state(ep["state"][0].astype(np.float64))
    assert np.abs(env.render().astype(int) - ep["pixels"][0]).max() <= 1
    for t in range(5):  # stored float32 states and actions replay to within float32 rounding
        env.set_state(ep["state"][t].astype(np.float64))
        nxt = env.step(ep["actions"][t].astype(np.float64))[4]["state"]
        np.testing.assert_allclose(nxt, ep["state"][t + 1], atol=1e-4)
    env.close()


def test_importing_envs_does_not_load_the_simulator():
    code = "import sys, jepa_wms.envs; print(sorted(m for m in ('mujoco', 'gymnasium_robotics') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
