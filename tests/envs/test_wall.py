import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from jepa_wms.envs import (
    WALL_SPEC,
    PlanningEnv,
    WallConfig,
    WallEnv,
    env_names,
    env_spec,
    make_env,
    wall_dynamics,
)

CFG = WallConfig()


def _in_wall_interior(p: np.ndarray) -> bool:
    x, y = p
    outside = min(x, y) < CFG.free_low or max(x, y) > CFG.free_high
    in_piece = any(x0 < x < x1 and y0 < y < y1 for (x0, y0), (x1, y1) in CFG.wall_boxes)
    return outside or in_piece


def test_registry_and_spec():
    assert "wall" in env_names()
    assert env_spec("wall") == WALL_SPEC == env_spec("jepa_wms/Wall-v0")
    assert (WALL_SPEC.frameskip, WALL_SPEC.eval_steps, WALL_SPEC.action_dim) == (5, 30, 2)
    env = make_env("jepa_wms/Wall-v0", img_size=32)
    assert isinstance(env, PlanningEnv) and env.render().shape == (32, 32, 3)


def test_unknown_env_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown env 'nope'.*wall.*jepa_wms/Wall-v0"):
        make_env("nope")
    with pytest.raises(ValueError, match="img_sizee"):
        make_env("wall", img_sizee=64)


def test_gymnasium_env_checker_passes():
    # Checks spaces, seeding determinism of reset and the step/reset return types.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advice about normalised action ranges, not an error
        check_env(make_env("wall", img_size=16))
    with pytest.raises(ValueError, match="finite array of shape"):
        make_env("wall").step(np.array([np.nan, 0.0]))


def test_gymnasium_make_runs_checked_episode():
    env = gymnasium.make("jepa_wms/Wall-v0")
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs["pixels"].dtype == np.uint8 and obs["proprio"].dtype == np.float32
    assert reward == pytest.approx(-info["distance"]) and not terminated and not truncated


def test_state_round_trip_is_exact_and_rejects_walls():
    env = WallEnv()
    env.reset(seed=0)
    s = np.array([12.345678901234, 47.000000000001])
    env.set_state(s)
    assert np.array_equal(env.get_state(), s)
    env.set_state(np.array([29.0, 10.0]))  # on the wall's face is free space
    with pytest.raises(ValueError, match=r"state \[31.0, 10.0\] is not in the free space"):
        env.set_state(np.array([31.0, 10.0]))
    with pytest.raises(ValueError, match="shape"):
        env.set_state(np.array([np.nan, 10.0]))


def test_free_square_is_the_originals():
    # The original's collision lines are at border_wall_loc - 1 = 4 and 65 - border_wall_loc = 60.
    env = WallEnv()
    assert (CFG.free_low, CFG.free_high) == (4.0, 60.0)
    env.set_state(np.array([4.0, 60.0]))
    env.set_state(np.array([4.5, 4.5]))
    with pytest.raises(ValueError, match=r"expected \[4.0, 60.0\]\^2"):
        env.set_state(np.array([3.9, 10.0]))


def test_success_radius():
    env = WallEnv()
    goal = np.array([20.0, 20.0])
    assert env.is_success(goal + np.array([4.4, 0.0]), goal)
    assert not env.is_success(goal + np.array([0.0, 4.6]), goal)
    env.reset(options={"state": goal + np.array([3.0, 4.0]), "goal": goal})
    _, reward, _, _, info = env.step(np.array([-0.5, 0.0]))  # distance 5 -> sqrt(2² + 4²) ≈ 4.47
    assert info["success"] and reward == pytest.approx(-np.sqrt(20.0)) and info["distance"] < 4.5


def test_free_motion_and_clipping():
    s = np.array([15.0, 20.0])
    assert np.allclose(wall_dynamics(s, np.array([0.5, -1.0])), [16.0, 18.0])
    assert np.allclose(wall_dynamics(s, np.array([10.0, 0.0])), [19.0, 20.0])  # clipped to 2 -> 4 units


@pytest.mark.parametrize(
    ("start", "action", "expected"),
    [
        ((27.0, 10.0), (2.0, 0.0), (29.0, 10.0)),  # horizontal into the wall stops on its face
        ((37.0, 50.0), (-2.0, 0.0), (35.0, 50.0)),
        ((20.0, 7.0), (0.0, -2.0), (20.0, 4.0)),  # vertical into the border: no division by zero
        ((20.0, 58.0), (0.0, 2.0), (20.0, 60.0)),  # top/bottom border: no NaN
        ((32.0, 28.0), (0.0, -2.0), (32.0, 26.0)),  # vertical inside the door onto the lower piece
        ((32.0, 32.0), (0.0, 2.0), (32.0, 34.0)),
        ((27.0, 26.0), (2.0, 0.0), (31.0, 26.0)),  # sliding exactly along the door's edge is allowed
        ((28.0, 25.0), (2.0, 0.5), (29.0, 25.25)),  # clips the lower piece's corner: stops at first contact
        ((29.0, 10.0), (0.0, 2.0), (29.0, 14.0)),  # moving along a wall face
        ((29.0, 10.0), (1.0, 1.0), (29.0, 10.0)),  # on the face, pushing in: stays, no 0.5 offset
    ],
)
def test_contact_points(start, action, expected):
    out = wall_dynamics(np.array(start), np.array(action))
    assert np.allclose(out, expected, atol=1e-12), out


def test_random_walks_never_enter_walls():
    rng = np.random.default_rng(0)
    env = WallEnv()
    # Random, axis-aligned and door-edge-grazing actions from random and adversarial starts.
    starts = [env.sample_free_state(rng) for _ in range(40)] + [
        np.array([27.0, 26.0]),
        np.array([33.0, 34.0]),
    ]
    for start in starts:
        pos = start
        for _ in range(60):
            kind = rng.integers(3)
            a = rng.uniform(-2.5, 2.5, size=2)
            if kind == 1:
                a[rng.integers(2)] = 0.0
            elif kind == 2:
                a = np.array([rng.choice([-2.0, 2.0]), rng.uniform(-0.05, 0.05)])
                pos = np.array([pos[0], rng.choice(CFG.door_y)]) if rng.random() < 0.5 else pos
            pos = wall_dynamics(pos, a)
            assert np.all(np.isfinite(pos)) and not _in_wall_interior(pos), (start, a, pos)


def test_passing_through_the_door():
    env = WallEnv()
    env.reset(options={"state": np.array([20.0, 30.0]), "goal": np.array([49.0, 30.0])})
    rooms = {env.room(env.get_state())}
    for _ in range(8):
        _, _, _, _, info = env.step(np.array([2.0, 0.0]))
        rooms.add(env.room(info["state"]))
    assert rooms == {-1, 0, 1} and info["success"]
    assert np.allclose(info["state"], [52.0, 30.0])


def test_render_is_deterministic_and_dot_is_at_state():
    env = WallEnv()
    state = np.array([14.3, 41.8])
    env.reset(options={"state": state, "goal": np.array([50.0, 10.0])})
    img = env.render()
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert np.array_equal(img, env.render_state(state)) and np.array_equal(img, env.render())
    redness = img[..., 0].astype(int) - img[..., 1]  # walls are black, the floor white: only the dot is red
    row, col = np.unravel_index(np.argmax(redness), img.shape[:2])
    scale = 64 / CFG.arena_size
    assert (row, col) == (int(state[1] * scale), int(state[0] * scale))
    assert img[row, col, 0] == 255 and img[row, col, 1] == img[row, col, 2] < 30
    # render_state of another state leaves the env alone; walls are black and the floor is white.
    other = env.render_state(np.array([50.0, 10.0]))
    assert not np.array_equal(other, img) and np.array_equal(env.render(), img)
    assert tuple(img[0, 0]) == (0, 0, 0) and tuple(img[int(32 * scale), 3]) == (0, 0, 0)
    assert tuple(img[int(30 * scale), int(32 * scale)]) == (255, 255, 255)  # the door is open floor


def test_render_224_matches_geometry():
    env = WallEnv(img_size=224)
    state = np.array([45.0, 20.0])
    img = env.render_state(state)
    row, col = np.unravel_index(np.argmax(img[..., 0].astype(int) - img[..., 1]), img.shape[:2])
    assert abs(row - state[1] * 224 / 65) < 1 and abs(col - state[0] * 224 / 65) < 1


def test_reset_seed_reproducible_and_goals_in_other_room():
    env = WallEnv()
    obs_a, info_a = env.reset(seed=7)
    goal_a = env.goal_state
    obs_b, info_b = env.reset(seed=7)
    assert np.array_equal(info_a["state"], info_b["state"]) and np.array_equal(goal_a, env.goal_state)
    assert np.array_equal(obs_a["pixels"], obs_b["pixels"])
    rng = np.random.default_rng(1)
    pairs = [env.sample_start_goal(rng) for _ in range(200)]
    assert all(env.room(s) == -env.room(g) != 0 for s, g in pairs)
    left_starts = np.mean([env.room(s) == -1 for s, _ in pairs])
    assert 0.35 < left_starts < 0.65  # swapped half the time
    m = CFG.margin
    coords = np.array([p for pair in pairs for p in pair])
    assert coords.min() >= CFG.free_low + m and coords.max() <= CFG.free_high - m


def test_reset_options_and_partial_options():
    env = WallEnv()
    _, info = env.reset(seed=1, options={"state": np.array([10.0, 10.0])})
    assert np.array_equal(info["state"], [10.0, 10.0])
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(options={"start": np.zeros(2)})


def test_data_policy_is_the_envs_own_and_follows_its_geometry():
    from jepa_wms.datasets import default_policy

    env = WallEnv(wall_center_x=40.0, door_center_y=20.0, max_action=1.5)
    policy = env.data_policy()
    assert policy.name == "door_seeking_walk" and default_policy(env).params() == policy.params()
    assert policy.door_center == (40.0, 20.0) and policy.wall_x == env.config.wall_x
    assert (policy.low, policy.high) == (-1.5, 1.5)


def test_collected_actions_are_pinned():
    """Moving the policy must not change a collected Wall dataset: episode 1 of seed 3, as collected before."""
    from jepa_wms.datasets.collect import collect_episode

    actions = collect_episode(WallEnv(img_size=16), 1, 3, 6)["actions"]
    expected = [
        [-0.7019843459129333, 0.8523882627487183],
        [-0.8161739110946655, 1.0434995889663696],
        [-1.0105299949645996, 0.8738530278205872],
        [-1.136818766593933, 0.7327322959899902],
        [-1.5305514335632324, 0.5501020550727844],
        [-1.394214391708374, -0.08925235271453857],
    ]
    np.testing.assert_array_equal(actions, np.array(expected, np.float32))
