import json

import imageio.v2 as imageio
import numpy as np
import pytest

from jepa_wms.envs import make_env
from jepa_wms.evaluation import episode_start_goal, evaluate
from tests.evaluation.test_media import MEDIAN_BLUE, PATH_GREEN, PATH_RED, colour_pixels


def test_results_files(tiny_checkpoint, tmp_path):
    res = evaluate(tiny_checkpoint, tmp_path, show_progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["episodes"] == 3 == res["episodes"]
    assert 0.0 <= saved["success_rate"] <= 1.0
    assert saved["mean_final_distance"] > 0 and saved["planning_seconds_per_episode"] > 0
    assert len((tmp_path / "episodes.csv").read_text().splitlines()) == 4
    cost_plot, paths = imageio.imread(tmp_path / "planning_cost.png"), imageio.imread(tmp_path / "paths.png")
    assert cost_plot.shape[:2] == (440, 660) and len(colour_pixels(cost_plot, MEDIAN_BLUE)) > 300
    assert paths.shape[:2] == (550, 550)
    assert len(colour_pixels(paths, PATH_GREEN)) + len(colour_pixels(paths, PATH_RED)) > 50  # the episodes' paths
    assert len(list((tmp_path / "videos").glob("episode_000_*.gif"))) == 1
    rec = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])
    assert len(rec["states"]) == 31 and len(rec["cost_history"]) == 2  # 30 env steps + start; 2 CEM iterations


def test_episode_depends_only_on_seed_and_index():
    env_a, env_b = make_env("wall"), make_env("wall")
    s1, g1 = episode_start_goal(env_a, 5, 3)
    env_b.reset(seed=123)
    s2, g2 = episode_start_goal(env_b, 5, 3)
    assert np.array_equal(s1, s2) and np.array_equal(g1, g2)
    assert not np.array_equal(episode_start_goal(env_a, 6, 3)[0], s1)


def test_results_do_not_depend_on_batching_and_resume(tiny_checkpoint, tmp_path):
    a = evaluate(tiny_checkpoint, tmp_path / "a", overrides=["plan.episode_chunk=3"], show_progress=False)
    b = evaluate(tiny_checkpoint, tmp_path / "b", overrides=["plan.episode_chunk=1"], show_progress=False)
    rows = lambda d: [json.loads(x) for x in (d / "episodes.jsonl").read_text().splitlines()]  # noqa: E731
    key = lambda r: (r["episode"], r["final_distance"], r["states"][-1])  # noqa: E731
    assert sorted(map(key, rows(tmp_path / "a"))) == sorted(map(key, rows(tmp_path / "b")))
    assert a["success_rate"] == b["success_rate"]
    # A kill mid-evaluation: keep the first episode and a cut-off line, rerun, same results.
    lines = (tmp_path / "b" / "episodes.jsonl").read_text().splitlines()
    (tmp_path / "b" / "episodes.jsonl").write_text(lines[0] + "\n" + lines[1][:40])
    c = evaluate(tiny_checkpoint, tmp_path / "b", overrides=["plan.episode_chunk=2"], show_progress=False)
    assert c["mean_final_distance"] == pytest.approx(b["mean_final_distance"])
    # The cut line was dropped before appending, not glued to the next record: every record is on disk.
    assert sorted(r["episode"] for r in rows(tmp_path / "b")) == [0, 1, 2]


def test_other_settings_in_same_folder_are_refused(tiny_checkpoint, tmp_path):
    evaluate(tiny_checkpoint, tmp_path, episodes=1, show_progress=False)
    with pytest.raises(FileExistsError, match="new --out"):
        evaluate(tiny_checkpoint, tmp_path, episodes=1, seed=9, show_progress=False)


def test_a_refused_evaluation_leaves_the_folder_to_its_corrected_rerun(tiny_checkpoint, tmp_path):
    bad = ["plan.planner=nevergrad", "plan.ng_optimizer=NoSuchOptimizer"]
    with pytest.raises(ValueError, match="NoSuchOptimizer"):
        evaluate(tiny_checkpoint, tmp_path, episodes=1, overrides=bad, show_progress=False)
    assert not (tmp_path / "eval_meta.json").exists()
    assert evaluate(tiny_checkpoint, tmp_path, episodes=1, show_progress=False)["episodes"] == 1


def test_episode_count_and_seed_are_range_checked_first(tmp_path):
    from jepa_wms.config import ConfigError

    with pytest.raises(ConfigError, match=r"episodes is 0; expected in \[1, 100000\]"):
        evaluate(tmp_path / "none.pt", tmp_path / "e", episodes=0, show_progress=False)
    with pytest.raises(ConfigError, match="seed is -2"):
        evaluate(tmp_path / "none.pt", tmp_path / "e", seed=-2, show_progress=False)
    assert not (tmp_path / "e").exists()


def test_only_planning_keys_can_be_overridden(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="plan"):
        evaluate(tiny_checkpoint, tmp_path, overrides=["model.predictor.depth=3"], show_progress=False)


def test_dset_goals_replay_held_out_segments(tiny_dataset):
    from jepa_wms.datasets import TrajectoryStore, split_episodes
    from jepa_wms.envs import wall_dynamics
    from jepa_wms.evaluation import DatasetGoals

    goals = DatasetGoals(tiny_dataset, steps=10, val_fraction=0.5, split_seed=0)
    store = TrajectoryStore(tiny_dataset)
    _, val = split_episodes(store.num_episodes, 0.5, 0)
    env = make_env("wall", img_size=16)
    start, goal = episode_start_goal(env, 3, 7, goals)
    assert np.array_equal(start, episode_start_goal(make_env("wall", img_size=16), 3, 7, goals)[0])
    # The start is a recorded state of a validation episode, and the goal is 10 replayed steps later.
    hits = [(e, t) for e in val for t in range(11) if np.array_equal(store.episode(e)["state"][t], start)]
    assert hits  # (a dot pinned against a wall repeats its state, so there may be several)

    def replay(e, t):
        pos = start
        for a in store.episode(e)["actions"][t : t + 10]:
            pos = wall_dynamics(pos, a)
        return pos

    assert any(np.allclose(goal, replay(e, t), atol=1e-5) for e, t in hits)
    assert not np.allclose(goal, start)


def test_dset_goal_source_in_evaluate(tiny_checkpoint, tiny_dataset, tmp_path):
    from jepa_wms.datasets import DatasetError, collect

    with pytest.raises(DatasetError, match="no validation episode has more than 30 frames"):
        evaluate(tiny_checkpoint, tmp_path / "a", overrides=["eval.goal_source=dset"], show_progress=False)
    longer = collect("wall", 4, tmp_path / "long", episode_len=40, workers=1, img_size=16, show_progress=False)
    res = evaluate(
        tiny_checkpoint,
        tmp_path / "b",
        episodes=2,
        overrides=["eval.goal_source=dset", f"eval.goal_dataset={longer.parent}"],
        show_progress=False,
    )
    assert res["episodes"] == 2
    rec = json.loads((tmp_path / "b" / "episodes.jsonl").read_text().splitlines()[0])
    # A replayed data segment ends where it ends: the goal is reachable within the 30-step budget by construction.
    assert rec["start_distance"] <= 30 * 2 * 2 * np.sqrt(2)
    with pytest.raises(DatasetError, match="does not exist"):
        evaluate(
            tiny_checkpoint,
            tmp_path / "c",
            overrides=["eval.goal_source=dset", f"eval.goal_dataset={tmp_path / 'absent'}"],
            show_progress=False,
        )


def test_dset_goals_must_come_from_the_env_of_the_model(tiny_checkpoint, tmp_path):
    from jepa_wms.datasets import DatasetError, TrajectoryWriter

    rng = np.random.default_rng(0)
    with TrajectoryWriter(tmp_path / "pusht", env="pusht") as w:
        for _ in range(4):  # long enough for 30-step goals; only the env is wrong
            w.add_episode(
                np.zeros((40, 16, 16, 3), np.uint8),
                rng.normal(size=(39, 2)),
                np.zeros((40, 4)),
                rng.normal(size=(40, 5)),
            )
    overrides = ["eval.goal_source=dset", f"eval.goal_dataset={tmp_path / 'pusht'}"]
    with pytest.raises(DatasetError, match="dset goals need a dataset of env 'wall', not 'pusht'"):
        evaluate(tiny_checkpoint, tmp_path / "e", overrides=overrides, show_progress=False)
    assert not (tmp_path / "e" / "eval_meta.json").exists()


def test_typed_core_gives_what_the_override_strings_give(tiny_checkpoint, tmp_path):
    """`evaluate`'s `key=value` strings become typed sections; `run_evaluation` takes those sections directly."""
    import dataclasses

    import torch

    from jepa_wms.config import ConfigError
    from jepa_wms.evaluation import checkpoint_setup, load_trained, run_evaluation

    strings = evaluate(tiny_checkpoint, tmp_path / "a", overrides=["plan.alpha=0.5"], episodes=2, show_progress=False)
    trained = load_trained(tiny_checkpoint, torch.device("cpu"))
    plan = dataclasses.replace(trained.cfg.plan, alpha=0.5)
    typed = run_evaluation(checkpoint_setup(trained, plan, trained.cfg.eval), tmp_path / "b", episodes=2)
    assert typed["plan"]["alpha"] == 0.5 and typed["checkpoint"] == str(tiny_checkpoint)
    assert (typed["success_rate"], typed["mean_final_distance"]) == (
        strings["success_rate"],
        strings["mean_final_distance"],
    )
    # Sections built by hand get the checks a config file gets.
    with pytest.raises(ConfigError, match="plan.num_elites"):
        checkpoint_setup(trained, dataclasses.replace(plan, num_elites=99), trained.cfg.eval)
