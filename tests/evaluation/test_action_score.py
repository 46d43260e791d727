"""The offline DROID action score (`jepa_wms.evaluation.action_score`, ``eval --protocol action-score``)."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from jepa_wms.cli import main
from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.evaluation import action_score
from jepa_wms.evaluation.action_score import (
    PROTOCOL,
    action_errors,
    protocol_plan,
    select_clips,
    zero_plan_errors,
)
from jepa_wms.saved_model import save_world_model
from tests.evaluation.pose_data import CumulativePoseModel, tiny_pose_model, write_pose_dataset

FAST = {"num_samples": 100, "iterations": 8, "precision": "fp32"}


@pytest.fixture(scope="module")
def pose_data(tmp_path_factory):
    # Episode 1 is too short for a clip (4 < 5 frames) and must never be drawn.
    return write_pose_dataset(tmp_path_factory.mktemp("pose") / "data", [12, 4, 9, 20, 6], seed=0)


def _rows(out):
    with open(out / "episodes.csv") as f:
        return list(csv.DictReader(f))


def _expert(data, rows):
    store = TrajectoryStore(data, preload=False)
    return np.stack(
        [store.actions[int(store.episode_starts[int(r["data_episode"])]) + int(r["init_frame"]) :][:3] for r in rows]
    ).astype(np.float64)


def test_clips_depend_only_on_seed_and_index():
    lengths = [12, 4, 9, 20, 6]
    every = select_clips(lengths, 3, range(40))
    assert [select_clips(lengths, 3, [k])[0] for k in (0, 17, 39)] == [every[0], every[17], every[39]]
    assert select_clips(lengths, 4, range(40)) != every
    for c in every:
        assert c.episode != 1 and 0 <= c.offset <= 1
        assert c.start + 5 <= lengths[c.episode] and c.init_frame + 3 <= c.start + 4


def test_the_cumulative_pose_model_scores_about_80(pose_data, tmp_path):
    res = action_score(CumulativePoseModel(), pose_data, tmp_path, seed=0)  # the full protocol: 300 × 15
    assert res["episodes"] == 64 and res["protocol"] == "action-score"
    assert res["score"] > 78 and res["mean_e_xyz"] < 0.003
    assert res["zero_plan_score"] < res["score"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["score"] == res["score"] and saved["plan"]["action_clip"] == PROTOCOL["action_clip"]
    rows = _rows(tmp_path)
    assert len(rows) == 64 and [int(r["episode"]) for r in rows] == list(range(64))
    # The zero plan's errors and score come from the expert actions alone: Σ_d |Σ_t a*_t[d]|.
    expert = _expert(pose_data, rows)
    zero = np.abs(expert.sum(axis=1))
    np.testing.assert_allclose([float(r["zero_e_xyz"]) for r in rows], zero[:, :3].sum(1), rtol=1e-5)
    np.testing.assert_allclose(res["zero_plan_mean_e_xyz"], zero[:, :3].sum(1).mean(), rtol=1e-9)
    assert res["zero_plan_score"] == pytest.approx(max(0.0, 800 * (0.1 - zero[:, :3].sum(1).mean())))


def test_a_plan_that_stays_at_zero_scores_the_zero_plan(pose_data, tmp_path):
    # init std 0: every CEM sample is the zero mean, so the plan is the zero plan through the whole pipeline.
    plan = dataclasses.replace(protocol_plan(), init_std=0.0, **FAST)
    res = action_score(CumulativePoseModel(), pose_data, tmp_path, plan=plan, episodes=16, seed=2)
    assert res["score"] == pytest.approx(res["zero_plan_score"])
    assert res["mean_e_rot"] == pytest.approx(res["zero_plan_mean_e_rot"])
    assert res["mean_e_grip"] == pytest.approx(res["zero_plan_mean_e_grip"])


def test_results_do_not_depend_on_batching(pose_data, tmp_path):
    model = CumulativePoseModel()
    runs = []
    for chunk in (1, 6):
        plan = dataclasses.replace(protocol_plan(), episode_chunk=chunk, **FAST)
        action_score(model, pose_data, tmp_path / str(chunk), plan=plan, episodes=6, seed=1)
        runs.append([{k: v for k, v in r.items() if k != "plan_seconds"} for r in _rows(tmp_path / str(chunk))])
    assert runs[0] == runs[1]


def test_errors_sum_per_dim_group():
    planned = np.zeros((1, 3, 7))
    planned[0, :, 0] = 0.01  # Σ = 0.03 on x
    expert = np.zeros((1, 3, 7))
    expert[0, 0, 0], expert[0, 1, 1], expert[0, 2, 4], expert[0, 1, 6] = 0.05, -0.02, 0.1, -0.5
    err = action_errors(planned, expert)
    assert err["xyz"][0] == pytest.approx(0.02 + 0.02) and err["rot"][0] == pytest.approx(0.1)
    assert err["grip"][0] == pytest.approx(0.5)
    assert zero_plan_errors(expert)["xyz"][0] == pytest.approx(0.07)


def test_a_dataset_without_7d_actions_is_refused(tmp_path):
    data = write_pose_dataset(tmp_path / "two_d", [8, 8], action_dim=2)
    with pytest.raises(DatasetError, match=r"trajectories.h5: '/actions' has 2 values per step.*7-D pose"):
        action_score(CumulativePoseModel(), data, tmp_path / "out", episodes=2)


def test_a_dataset_of_short_episodes_is_refused(tmp_path):
    data = write_pose_dataset(tmp_path / "short", [3, 4, 2])
    with pytest.raises(DatasetError, match=r"trajectories.h5: '/episode_length': no episode has the 5 kept frames"):
        action_score(CumulativePoseModel(), data, tmp_path / "out", episodes=2)
    assert not (tmp_path / "out" / "results.json").exists()


def test_the_command_line_scores_a_checkpoint(pose_data, tmp_path, capsys):
    model, cfg = tiny_pose_model()
    ckpt = save_world_model(tmp_path / "pose.pt", model, cfg, raw_action_dim=7, proprio_dim=7, env_kwargs={})
    argv = ["eval", "--protocol", "action-score", "--checkpoint", str(ckpt), "--data", str(pose_data)]
    small = ["plan.num_samples=16", "plan.iterations=2", "plan.proprio_dynamics=pose"]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--episodes", "3", "--seed", "5", "--device", "cpu", *small]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["episodes"] == 3 and res["seed"] == 5 and res["checkpoint"] == str(ckpt)
    # The protocol's settings, under the overrides.
    assert res["plan"]["horizon"] == 3 and res["plan"]["init_std"] == 0.1 and res["plan"]["kv_window"] == 2
    assert res["plan"]["num_samples"] == 16 and res["plan"]["proprio_dynamics"] == "pose"
    assert len(_rows(out)) == 3 and "action score" in capsys.readouterr().out


def test_the_command_line_refuses_bad_input_in_one_line(pose_data, tiny_checkpoint, tmp_path, capsys):
    base = ["eval", "--protocol", "action-score", "--out", str(tmp_path / "o")]
    assert main([*base, "--data", str(pose_data)]) == 2
    assert "needs --checkpoint CK and --data DIR" in capsys.readouterr().err
    # The Wall checkpoint plans 2 × 2-D actions per model step.
    assert main([*base, "--checkpoint", str(tiny_checkpoint), "--data", str(pose_data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "7-D pose action per kept frame" in err


def test_a_droid_folder_scores_as_its_converted_file(pose_data, tmp_path):
    from jepa_wms.config import load_config
    from jepa_wms.datasets.export import export_droid_raw
    from jepa_wms.datasets.formats import convert

    folder = export_droid_raw(pose_data, tmp_path / "droid", fps=4, show_progress=False)
    converted = convert(folder, tmp_path / "conv", img_size=8, options={"fps": "4"}, show_progress=False)
    plan = dataclasses.replace(protocol_plan(), **FAST)
    reader = load_config("droid_quick", ["data.reader_options.fps=4"]).data  # the folder's data section
    untimed = ("planning_seconds_per_episode", "planning_seconds_total", "plan_seconds", "data")
    results = []
    for data, out, data_config in ((folder, "folder", reader), (converted, "file", None)):
        res = action_score(CumulativePoseModel(), data, tmp_path / out, plan=plan, episodes=8, seed=1, img_size=8,
                           data_config=data_config)  # fmt: skip
        rows = [{k: v for k, v in r.items() if k not in untimed} for r in _rows(tmp_path / out)]
        results.append(({k: v for k, v in res.items() if k not in untimed}, rows))
    assert results[0] == results[1]
