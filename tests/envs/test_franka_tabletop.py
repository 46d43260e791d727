"""The robosuite stand-in for RoboCasa (franka-tabletop-*) and the RoboCasa env's missing-install error.

Building the env takes ~10 s, so every test shares one instance (module fixture); the env tests skip without
robosuite, the RoboCasa error test runs anyway.
"""

from __future__ import annotations

import numpy as np
import pytest

from jepa_wms.envs import env_spec, make_env, robocasa_missing


@pytest.fixture(scope="module")
def env():
    pytest.importorskip("robosuite", reason="robosuite not installed (make robosuite)")
    e = make_env("franka-tabletop-reach")
    yield e
    e.close()


def test_spec_and_camera(env):
    spec = env_spec("franka-tabletop-place")
    assert (spec.action_dim, spec.proprio_dim, spec.frameskip, spec.eval_steps) == (7, 7, 1, 12)
    assert env_spec("franka-tabletop-reach").state_dim == env.state_dim
    model = env.sim.model
    cam = model.camera("robot0_leftview")
    assert model.body(int(cam.bodyid[0])).name == "mobilebase0_support"
    np.testing.assert_allclose(cam.pos, [0.4, 0.55, 0.5])
    np.testing.assert_allclose(cam.quat, np.array([0, 0, 0.573462, 0.819232]) / np.linalg.norm([0.573462, 0.819232]))
    np.testing.assert_allclose(cam.fovy, 85)
    img = env.render()
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8 and img.std() > 5


def test_action_mapping_by_part_names(env):
    split = env.sim.split
    assert split["right"] == (0, 6) and split["right_gripper"] == (10, 11) and env.sim.input_dim in (11, 12)
    a = np.array([0.02, -0.01, 0.03, 0.1, -0.2, 0.05, 0.7])
    vec = env.sim.robot_input(a)
    arm, grip = slice(*split["right"]), slice(*split["right_gripper"])
    np.testing.assert_allclose(vec[arm], np.concatenate([a[:3] / 0.05, a[3:6] / 0.5]))
    np.testing.assert_allclose(vec[grip], [0.7])
    others = np.ones(env.sim.input_dim, bool)
    others[arm] = others[grip] = False
    assert np.all(vec[others][: split["base"][1] - split["torso"][0]] == 0)  # torso and base still
    np.testing.assert_allclose(env.sim.robot_input(np.full(7, 9.0))[arm], 1.0)  # saturates, not wraps


def test_hand_follows_commanded_delta(env):
    env.reset(seed=0)
    for delta in ([0.02, 0, 0], [0, -0.02, 0], [0, 0, 0.02]):
        before = env.get_state()[:3]
        env.step(np.array([*delta, 0, 0, 0, -1.0]))
        moved = env.get_state()[:3] - before
        d = np.asarray(delta)
        along = moved @ d / np.linalg.norm(d)
        assert 0.6 * 0.02 < along < 1.5 * 0.02, (delta, moved)  # measured: 0.9–1.1× the command
        assert np.linalg.norm(moved - along * d / np.linalg.norm(d)) < 0.01


def test_state_round_trip_and_replay(env):
    env.reset(seed=1)
    s0 = env.get_state()
    env.set_state(s0)
    np.testing.assert_array_equal(env.get_state(), s0)
    actions = [np.array([0.01, 0.01, -0.01, 0, 0, 0.05, 1.0]), np.array([-0.02, 0, 0.01, 0.02, 0, 0, -1.0])]
    first = [env.advance(a) for a in actions]
    env.set_state(s0)
    again = [env.advance(a) for a in actions]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    np.testing.assert_array_equal(env.render_state(s0), env.render_state(s0))
    obs, info = env.reset(options={"state": s0, "goal": s0})
    np.testing.assert_allclose(obs["proprio"], s0[:7].astype(np.float32))
    assert 0 <= obs["proprio"][6] <= 1


def test_success_rules(env):
    home = env.get_state()
    hand = home[:3]
    near = env.with_object(home, hand + [0.05, 0.05, -0.1])
    far = env.with_object(home, hand + [0.25, 0.1, -0.15])
    assert env.is_success(near, near) and not env.is_success(far, far)
    assert env.distance(near, near) == pytest.approx(np.linalg.norm(near[:3] - near[7:10]))
    env.task = "place"  # place shares the env class; judge with its rule on the same instance
    try:
        assert env.is_success(near, env.with_object(home, near[7:10] + [0.1, 0, 0]))
        assert not env.is_success(near, env.with_object(home, near[7:10] + [0.12, 0.1, 0]))
    finally:
        env.task = "reach"


def test_data_policy_moves_towards_object(env):
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=2)
    policy = env.data_policy()
    policy.reset(rng, info["state"])
    start = env.distance(info["state"], info["state"])
    for _ in range(6):
        a = policy(rng, info["state"])
        assert a.shape == (7,) and env.action_space.contains(a)
        _, _, _, _, info = env.step(a)
    assert env.distance(info["state"], info["state"]) < start


def test_robocasa_error_names_what_is_missing():
    missing = robocasa_missing()
    if missing is None:
        pytest.skip("robocasa and its assets are installed")
    with pytest.raises(ImportError, match="robocasa"):
        make_env("robocasa-reach")
