import math

import numpy as np
import pytest

pytest.importorskip("pymunk")

from jepa_wms.cli import main  # noqa: E402
from jepa_wms.datasets import TrajectoryStore, collect, collect_episode, default_policy, policy_names  # noqa: E402
from jepa_wms.envs import PushTEnv, WallEnv  # noqa: E402
from jepa_wms.envs.pusht import PushTSim  # noqa: E402
from jepa_wms.envs.pusht_expert import ExpertPushPolicy, body_signed_distance, contact_candidates  # noqa: E402
from jepa_wms.envs.pusht_policy import measure  # noqa: E402
from jepa_wms.envs.pusht_render import AGENT_RADIUS, tee_cog_world  # noqa: E402

ENV = PushTEnv(img_size=8)
L = 57.0  # px per radian: the success rule's 20 px against its π/9


def _rollout(policy, rng, start, steps):
    state, sim, actions = start.copy(), PushTSim(start), []
    for _ in range(steps):
        a = policy(rng, state)
        actions.append(a)
        sim.step(*ENV.pd_target(state, a))
        state = sim.state()
    return state, np.array(actions)


def _noiseless():
    """The expert without noise, pursuing one target pose for the whole rollout."""
    return ExpertPushPolicy(noise_sigma=0.0, pos_tol=0.0, angle_tol=0.0, max_target_steps=10**6, stall_steps=10**6)


def test_names_and_default_unchanged():
    assert policy_names(ENV) == ["noisy_push", "expert", "random_walk"]
    assert ENV.data_policy().name == ENV.data_policy("").name == "pusht_noisy_push" == default_policy(ENV).name
    assert ENV.data_policy("expert").name == default_policy(ENV, "expert").name == "pusht_expert_push"
    assert ENV.data_policy("random_walk").name == "pusht_ar1_walk"
    params = ENV.data_policy("expert").params()
    assert params["angle_scale"] > 0 and all(isinstance(v, float) for v in params.values())


def test_unknown_policy_lists_the_names(tmp_path, capsys):
    with pytest.raises(ValueError, match="noisy_push, expert, random_walk"):
        ENV.data_policy("expret")
    with pytest.raises(ValueError, match="noisy_push, expert, random_walk"):
        collect("pusht", 1, tmp_path, episode_len=2, workers=1, img_size=16, show_progress=False, policy="expret")
    assert not (tmp_path / "trajectories.h5").exists()
    wall = WallEnv()
    assert default_policy(wall, policy_names(wall)[0]).name == default_policy(wall).name
    with pytest.raises(ValueError, match="door_seeking_walk"):
        default_policy(wall, "expert")  # other envs accept their default only
    assert main(["collect", "--env", "pusht", "--policy", "expret", "--episodes", "1", "--out", str(tmp_path)]) == 2
    assert "expert" in capsys.readouterr().err


def test_contacts_are_touchable():
    cand = contact_candidates()
    assert len(cand["lever"]) > 50
    # Every agent position touches the T without overlapping it, and the normals point into the block.
    np.testing.assert_allclose(body_signed_distance(cand["agent"]), AGENT_RADIUS, atol=0.5)
    assert (body_signed_distance(cand["agent"] + 3.0 * cand["normal"]) < AGENT_RADIUS).all()
    # Levers from ±75 px (stem sides near the tip) to pushes through the centre of gravity.
    assert cand["lever"].max() > 70 and cand["lever"].min() < -70 and np.abs(cand["lever"]).min() < 3


def test_deterministic_and_bounded():
    rng = np.random.default_rng(7)
    start = ENV.sample_free_state(rng)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(11)
        policy = ENV.data_policy("expert")
        policy.reset(rng, start)
        runs.append(_rollout(policy, rng, start, 60))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert np.abs(runs[0][1]).max() <= 1.0 and runs[0][1].shape == (60, 2)
    assert np.abs(runs[0][0][2:5] - start[2:5]).max() > 1.0  # it did move the block


def test_action_statistics_and_rotation():
    expert = measure(lambda: ENV.data_policy("expert"), episodes=8, steps=100)
    noisy = measure(lambda: ENV.data_policy("noisy_push"), episodes=8, steps=100)
    # The reference data: action std 0.202 / 0.200, agent-velocity std 75 / 74 px/s.
    assert all(0.17 < s < 0.24 for s in expert["action_std_xy"]), expert["action_std_xy"]
    assert all(60 < s < 90 for s in expert["velocity_std_xy"]), expert["velocity_std_xy"]
    assert expert["moved"] > 0.2
    # It turns the block much more than the default pusher over the 30 steps of an evaluation goal.
    assert expert["window_rotation"][1] > 1.4 * noisy["window_rotation"][1]
    assert expert["episode_rotation"][1] > 1.0


def test_reduces_pose_error_to_its_target():
    before, after = [], []
    for e in range(6):
        rng = np.random.default_rng([0, e])
        start = ENV.sample_free_state(rng)
        policy = _noiseless()
        policy.reset(rng, start)
        d0, a0 = policy.pose_error(start)
        end, _ = _rollout(policy, rng, start, 120)
        d1, a1 = policy.pose_error(end)
        before.append((np.linalg.norm(d0), abs(a0)))
        after.append((np.linalg.norm(d1), abs(a1)))
    before, after = np.array(before), np.array(after)
    assert np.median(before[:, 1]) > 1.0  # the targets ask for turns ...
    assert after[:, 1].max() < 0.3  # ... which all get done,
    assert np.median(after[:, 0]) < 20.0
    err0, err1 = np.hypot(before[:, 0], L * before[:, 1]), np.hypot(after[:, 0], L * after[:, 1])
    assert err1.sum() < 0.25 * err0.sum(), (before, after)


@pytest.mark.parametrize("turn", [math.pi / 3, -math.pi / 3])
def test_turns_the_block_in_place(turn):
    start = np.array([100.0, 400.0, 256.0, 220.0, 0.0, 0.0, 0.0])
    cog = tee_cog_world(start[2:4], start[4])
    policy = _noiseless()
    rng = np.random.default_rng(0)
    policy.reset(rng, start)
    policy.set_target(cog, turn)
    end, _ = _rollout(policy, rng, start, 60)
    d, dang = policy.pose_error(end)
    assert abs(dang) < abs(turn) / 2  # at least half of the 60° turn is done
    assert np.linalg.norm(d) < 30.0
    assert abs((end[4] - start[4] + math.pi) % (2 * math.pi) - math.pi) > abs(turn) / 2


def test_collect_expert(tmp_path):
    path = collect("pusht", 2, tmp_path, episode_len=12, workers=1, img_size=16, show_progress=False, policy="expert")
    store = TrajectoryStore(path)
    assert store.collector["policy"] == "pusht_expert_push"
    assert store.collector["params"] == ExpertPushPolicy().params()
    # The episodes are the expert's, not the default pusher's.
    env = PushTEnv(img_size=16)
    actions = store.episode(1)["actions"]
    assert actions.shape == (12, 2) and np.abs(actions).max() <= 1.0
    np.testing.assert_array_equal(actions, collect_episode(env, 1, 0, 12, "expert")["actions"])
    assert not np.array_equal(actions, collect_episode(env, 1, 0, 12)["actions"])


def test_config_key_reaches_collect(tmp_path, monkeypatch):
    import importlib

    from jepa_wms.config import load_config
    from jepa_wms.demo import run_demo

    assert load_config("pusht_quick").collect.policy == ""
    seen = {}

    def fake_collect(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop the demo before training

    # The module, not the package's `collect` (the function): `collect_for_config` calls its module's `collect`.
    monkeypatch.setattr(importlib.import_module("jepa_wms.datasets.collect"), "collect", fake_collect)
    with pytest.raises(KeyboardInterrupt):
        run_demo("pusht", tmp_path, ["collect.policy=expert"], show_progress=False, quick=True)
    assert seen["policy"] == "expert"
