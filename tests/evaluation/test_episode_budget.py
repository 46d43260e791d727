"""`eval.max_steps`: the env-step budget of an episode (0: the env's reference protocol), used for DINO-WM-style
replanning with `plan.execute` < `plan.horizon`; success is still judged at the end only."""

import json

import pytest

from jepa_wms.config import ConfigError, load_config
from jepa_wms.evaluation import evaluate

BASE = ["plan.iterations=2", "plan.num_samples=4"]


def _first_record(folder):
    return json.loads((folder / "episodes.jsonl").read_text().splitlines()[0])


def test_max_steps_sets_the_env_steps_per_episode_and_the_default_keeps_the_protocol(tiny_checkpoint, tmp_path):
    evaluate(tiny_checkpoint, tmp_path / "default", episodes=1, overrides=BASE, show_progress=False)
    assert len(_first_record(tmp_path / "default")["states"]) == 31  # Wall's 30 protocol steps + the start
    assert json.loads((tmp_path / "default" / "results.json").read_text())["env_steps"] == 30
    # Replanning after every model action (2 env steps each in the tiny config) over a 12-step budget, with iCEM,
    # which carries its elites from one replan to the next.
    replan = [*BASE, "plan.execute=1", "eval.max_steps=12", "plan.planner=icem", "plan.num_elites=2"]
    evaluate(tiny_checkpoint, tmp_path / "replan", episodes=1, overrides=replan, show_progress=False)
    assert len(_first_record(tmp_path / "replan")["states"]) == 13
    saved = json.loads((tmp_path / "replan" / "results.json").read_text())
    assert saved["env_steps"] == 12 and saved["plan"]["execute"] == 1


def test_a_budget_is_part_of_the_result_folder_but_the_protocol_value_is_the_default(tiny_checkpoint, tmp_path):
    evaluate(tiny_checkpoint, tmp_path, episodes=1, overrides=BASE, show_progress=False)
    # Wall's own 30 steps, spelled out, is the same evaluation: the folder resumes ...
    evaluate(tiny_checkpoint, tmp_path, episodes=1, overrides=[*BASE, "eval.max_steps=30"], show_progress=False)
    # ... another budget is another evaluation.
    with pytest.raises(FileExistsError, match="new --out"):
        evaluate(tiny_checkpoint, tmp_path, episodes=1, overrides=[*BASE, "eval.max_steps=10"], show_progress=False)


@pytest.mark.parametrize("value", ["-1", "1.5"])
def test_a_bad_budget_is_a_config_error(value):
    with pytest.raises(ConfigError, match=r"eval\.max_steps"):
        load_config("wall", [f"eval.max_steps={value}"])
