"""robocasa-{reach,place} reset from a demo recorded from the robosuite stand-in (franka-tabletop-reach).

RoboCasa's kitchens cannot be installed here, but the reset path is the same for any recorded robosuite scene: the
scene is rebuilt from ``model_file`` and set to the recorded ``states``. A short episode of the stand-in is recorded
into a ``robocasa_hdf5`` file (one row per 20 Hz control step, each command held 5 rows as the env's step does),
then the env resets from it. One recording and one env serve every test (module fixtures: building a robosuite
scene takes seconds). Skips without robosuite; the kitchen error test runs only without robocasa.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass

import h5py
import numpy as np
import pytest

from jepa_wms.envs import make_env, robocasa_missing
from jepa_wms.envs.franka_sim import ARM_SCALE, HOLD, RobotSim
from jepa_wms.envs.franka_tabletop import STATE_DIM
from jepa_wms.envs.robocasa import SEGMENT_KEY, STANDIN_ENV_NAME, Segment, task_segments

IMG = 64
CAM = "robot0_leftview"
# Labels of the 50 recorded rows: a 21-row reach segment (rows 10–30), a place segment, a second short reach one.
LABELS = ["idle"] * 10 + ["reach"] * 21 + ["place"] * 14 + ["reach"] * 5
# demo_1 reuses rows 0–30 of the same episode: a one-row "reach" (not a segment) and a reach segment at rows 20–30.
LABELS_1 = ["idle"] * 5 + ["reach"] + ["idle"] * 14 + ["reach"] * 11


@dataclass
class Recording:
    path: str
    states: np.ndarray  # (T, 1 + nq + nv) robosuite flattened states
    actions: np.ndarray  # (T, 12) robot input in RoboCasa's order: arm 6, gripper, base 3, torso, base mode
    eef_pos: np.ndarray
    obj_pos: np.ndarray
    images: np.ndarray
    latch: np.ndarray  # (T, 2) the gripper's latched command before each row (not in `states`)


def _record(env, rng):
    """10 env steps of franka-tabletop-reach (open and rise, reach the cube, close, lift), one row per control
    step, read from robosuite's own observables; each DROID action is held for HOLD rows as `advance` does."""
    obs, info = env.reset(seed=0)
    rs, sim = env._rs, env.sim
    cube = info["state"][7:10]
    rows: dict[str, list] = {k: [] for k in ("states", "actions", "pos", "quat", "qpos", "obj", "img", "latch")}
    for k in range(10):
        s = env.get_state()
        if k < 2:
            a = np.array([0, 0, 0.01, 0, 0, 0, -1.0])
        elif k < 6:
            a = env.expert_action(s, cube + [0, 0, 0.02], -1.0)
        elif k < 8:
            a = env.expert_action(s, s[:3], 1.0)
        else:
            a = env.expert_action(s, s[:3] + [0, 0, 0.03], 1.0)
        a[:6] += rng.uniform(-0.003, 0.003, 6)  # some rotation too
        for _ in range(HOLD):
            o = rs._get_observations(force_update=True)
            rows["states"].append(rs.sim.get_state().flatten())
            rows["actions"].append(np.concatenate([np.clip(a[:6] / ARM_SCALE, -1, 1), a[6:], np.zeros(4), [-1.0]]))
            rows["pos"].append(o["robot0_eef_pos"])
            rows["quat"].append(o["robot0_eef_quat"])  # x, y, z, w
            rows["qpos"].append(o["robot0_gripper_qpos"])
            rows["obj"].append(o["cube_pos"])
            rows["img"].append(env.render())
            i = RobotSim.SUMMARY + sim.phys_dim
            rows["latch"].append(env.get_state()[i : i + 2])
            sim.control(a, steps=1)
    return {k: np.array(v) for k, v in rows.items()}


def _write_demo(g, rows, labels, xml):
    t = len(labels)
    g.attrs["model_file"] = xml
    g["states"] = rows["states"][:t]
    g["actions"] = rows["actions"][:t]
    g["obs/robot0_eef_pos"] = rows["pos"][:t]
    g["obs/robot0_eef_quat"] = rows["quat"][:t]
    g["obs/robot0_gripper_qpos"] = rows["qpos"][:t]
    g[f"obs/{CAM}_image"] = rows["img"][:t]
    g[SEGMENT_KEY] = np.array(labels, dtype="S")
    g["meta_data_info/current_obj_pos"] = rows["obj"][:t]


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    pytest.importorskip("robosuite", reason="robosuite not installed (make robosuite)")
    standin = make_env("franka-tabletop-reach", img_size=IMG)
    try:
        rows = _record(standin, np.random.default_rng(0))
        # The MJCF robosuite compiled the scene from. (robomimic stores sim.model.get_xml(), MuJoCo's
        # mj_saveLastXML, which in MuJoCo 3.3 drops <compiler inertiagrouprange>: the rebuilt masses differ.)
        xml = standin._rs.model.get_xml()
    finally:
        standin.close()
    path = tmp_path_factory.mktemp("robocasa") / "standin.hdf5"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": STANDIN_ENV_NAME, "type": 1, "env_kwargs": {}})
        _write_demo(data.create_group("demo_0"), rows, LABELS, xml)
        _write_demo(data.create_group("demo_1"), rows, LABELS_1, xml)
    return Recording(str(path), rows["states"], rows["actions"], rows["pos"], rows["obj"], rows["img"], rows["latch"])


@pytest.fixture(scope="module")
def env(rec):
    e = make_env("robocasa-reach", dataset=rec.path, img_size=IMG)
    yield e
    e.close()


def _qpos(env, state):
    return state[RobotSim.SUMMARY + 1 : RobotSim.SUMMARY + 1 + env.sim.model.nq]


def test_task_segments():
    assert task_segments(LABELS, "reach") == [(10, 30), (45, 49)]
    assert task_segments(np.array(LABELS_1, dtype="S"), "reach") == [(20, 30)]  # bytes; one-row runs dropped
    assert task_segments(["reach", "reach"], "place") == []


def test_segments_scene_and_layout(env, rec):
    assert env.segments == [Segment("demo_0", 10, 30), Segment("demo_0", 45, 49), Segment("demo_1", 20, 30)]
    assert env.state_dim == STATE_DIM and env.sim.model.body(env.sim.object_body).name == "cube_main"
    from jepa_wms.datasets.formats.robocasa_hdf5 import read  # the file is in the layout the converter reads

    n, episodes = read(rec.path, camera=CAM, action="recorded")
    ep = next(iter(episodes))
    assert n == 2 and len(ep["state"]) == 10
    np.testing.assert_allclose(ep["proprio"][:, :3], rec.eef_pos[::5], atol=1e-6)
    np.testing.assert_allclose(ep["actions"], rec.actions[:45:5, :7], atol=1e-6)


def test_start_and_goal_are_the_recorded_steps(env, rec):
    for i in (0, 2, 1):  # demo_0, demo_1 (its scene is rebuilt), back to demo_0
        seg = env.segments[i]
        start, goal = env.segment_states(i)
        for state, row in ((start, seg.first), (goal, seg.last)):  # demo_1's row r is the recording's row r
            np.testing.assert_array_equal(_qpos(env, state), rec.states[row, 1 : 1 + env.sim.model.nq])
            np.testing.assert_allclose(state[:3], rec.eef_pos[row], rtol=0, atol=1e-9)
            np.testing.assert_allclose(state[7:10], rec.obj_pos[row], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(env.get_state(), start)  # the env is left at the start
    # The gripper's latched command is rebuilt from the recorded commands, starting from a robosuite reset's 0
    # (the stand-in's start holds -0.8; 5 open commands later both are -1), e.g. -0.8 a row after closing starts.
    i = RobotSim.SUMMARY + env.sim.phys_dim
    assert env.recorded_state("demo_0", 0)[i : i + 2].tolist() == [0, 0]
    for row in (5, 10, 30, 31, 33, 45, 49):
        np.testing.assert_array_equal(env.recorded_state("demo_0", row)[i : i + 2], rec.latch[row])
    assert rec.latch[31] == pytest.approx([-0.8, -0.8])


def test_reset_draws_a_segment_and_renders(env, rec):
    pairs = [env.segment_states(i) for i in range(len(env.segments))]
    seen = set()
    for seed in (0, 1):  # draws segments 2 and 1
        obs, info = env.reset(seed=seed)
        k = next(i for i, (s, _) in enumerate(pairs) if np.array_equal(s, info["state"]))
        np.testing.assert_array_equal(env.goal_state, pairs[k][1])
        np.testing.assert_allclose(obs["proprio"], info["state"][:7].astype(np.float32))
        seen.add(k)
    assert len(seen) == 2
    start, goal = env.segment_states(0)
    obs, _ = env.reset(options={"state": start, "goal": goal})
    img = obs["pixels"]
    assert img.shape == (IMG, IMG, 3) and img.dtype == np.uint8 and img.std() > 5
    # The rebuilt scene draws as the stand-in did (a few pixels differ by a level or two).
    assert np.abs(img.astype(int) - rec.images[10]).mean() < 0.5
    assert np.abs(env.render_state(goal).astype(int) - rec.images[30]).mean() < 0.5
    np.testing.assert_array_equal(env.get_state(), start)


def test_recorded_actions_replay_the_recording(env, rec):
    seg = env.segments[0]
    start, goal = env.segment_states(0)
    env.reset(options={"state": start, "goal": goal})
    nq = env.sim.model.nq
    for row in range(seg.first, seg.last, HOLD):
        u = rec.actions[row, :7]  # OSC input units; the env takes DROID units
        _, _, _, _, info = env.step(np.concatenate([u[:6] * ARM_SCALE, u[6:]]))
        s, nxt = info["state"], row + HOLD
        # Not bit-exact: the OSC's base origin lags the base by one physics step, which `states` does not hold.
        np.testing.assert_allclose(s[:3], rec.eef_pos[nxt], rtol=0, atol=1e-6)
        np.testing.assert_allclose(s[7:10], rec.obj_pos[nxt], rtol=0, atol=1e-6)
        np.testing.assert_allclose(_qpos(env, s), rec.states[nxt, 1 : 1 + nq], rtol=0, atol=1e-6)
    assert env.state_cost(s[None], goal)[0] < 1e-12 and info["success"]


def _copy(rec, tmp_path, edit):
    path = tmp_path / "bad.hdf5"
    shutil.copy(rec.path, path)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _relabel(g, labels):
    del g[SEGMENT_KEY]
    g[SEGMENT_KEY] = np.array(labels, dtype="S")


def _no_reach(f):
    for g in f["data"].values():
        _relabel(g, ["idle"] * len(g["states"]))


BAD = {
    "no-model-file": (
        lambda f: f["data/demo_1"].attrs.__delitem__("model_file"),
        "data/demo_1: missing attribute model_file",
    ),
    "no-segment-key": (lambda f: f.__delitem__(f"data/demo_0/{SEGMENT_KEY}"), f"data/demo_0: missing {SEGMENT_KEY}"),
    "no-states": (lambda f: f.__delitem__("data/demo_1/states"), "data/demo_1: missing states"),
    "no-task-segment": (
        _no_reach,
        f": no 'reach' segment of two or more steps in {SEGMENT_KEY} (segments found: idle)",
    ),
    "length-mismatch": (
        lambda f: _relabel(f["data/demo_0"], LABELS[:-1]),
        f"data/demo_0: {SEGMENT_KEY} (49), actions (50) and states (50) differ in length",
    ),
}


@pytest.mark.parametrize("bad", BAD)
def test_bad_files_name_the_file_and_key(rec, tmp_path, bad):
    edit, message = BAD[bad]
    path = _copy(rec, tmp_path, edit)
    with pytest.raises(ValueError, match=re.escape(f"{path}{'' if message[0] == ':' else ' '}{message}")):
        make_env("robocasa-reach", dataset=str(path))


def test_not_hdf5_and_bad_object_body(rec, tmp_path):
    bad = tmp_path / "bad.hdf5"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match=re.escape(f"{bad}: cannot read as HDF5")):
        make_env("robocasa-reach", dataset=str(bad))
    with pytest.raises(ValueError, match=r"data/demo_0: the recorded scene has no body 'obj_main' \(object_body=\)"):
        make_env("robocasa-reach", dataset=rec.path, img_size=IMG, object_body="obj_main")


def test_kitchen_recording_needs_robocasa(rec, tmp_path):
    if robocasa_missing() is None:
        pytest.skip("robocasa and its assets are installed")
    kitchen = json.dumps({"env_name": "PnPCounterToCab"})
    path = _copy(rec, tmp_path, lambda f: f["data"].attrs.__setitem__("env_args", kitchen))
    message = f"robocasa-reach: {path} was recorded in the RoboCasa kitchen 'PnPCounterToCab'; the robocasa package"
    with pytest.raises(ImportError, match=re.escape(message)):
        make_env("robocasa-reach", dataset=str(path))
