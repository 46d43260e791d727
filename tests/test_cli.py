"""The command line end to end on a tiny run, and its one-line errors on bad input."""

import json

import pytest

from jepa_wms.cli import main
from tests.conftest import TINY


def test_collect_train_eval(tmp_path, capsys):
    data, run, ev = tmp_path / "data", tmp_path / "run", tmp_path / "eval"
    assert (
        main(
            [
                "collect",
                "--env",
                "wall",
                "--episodes",
                "4",
                "--episode-len",
                "16",
                "--img-size",
                "16",
                "--workers",
                "1",
                "--out",
                str(data),
            ]
        )
        == 0
    )
    assert main(["train", "--data", str(data), "--out", str(run), *TINY, "train.epochs=1"]) == 0
    ckpt = run / "checkpoints" / "last.pt"
    assert main(["eval", "--checkpoint", str(ckpt), "--episodes", "2", "--seed", "1", "--out", str(ev)]) == 0
    assert json.loads((ev / "results.json").read_text())["episodes"] == 2
    out = capsys.readouterr().out
    assert "success rate" in out
    assert "[train] epoch 1/1" in out, "the library's log lines are the command's output"


def test_collect_reads_a_config_and_flags_override_it(tmp_path, capsys):
    from jepa_wms.datasets import TrajectoryStore

    config = tmp_path / "small.yaml"
    config.write_text("base: wall\ncollect: {episodes: 3, episode_len: 5, workers: 1, img_size: 16, seed: 4}\n")

    def collected(name: str, *argv: str) -> tuple:
        assert main(["collect", "--config", str(config), "--out", str(tmp_path / name), *argv]) == 0
        store = TrajectoryStore(tmp_path / name, preload=False)
        shape = (
            store.env,
            store.num_episodes,
            int(store.episode_lengths[0]),
            store.image_shape[0],
            store.collector["seed"],
        )
        store.close()
        return shape

    assert collected("from_config") == ("wall", 3, 6, 16, 4)  # 5 steps: 6 frames
    assert collected("flags", "--episodes", "2", "--img-size", "24", "collect.seed=7") == ("wall", 2, 6, 24, 7)
    assert "wrote" in capsys.readouterr().out


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_unknown_config_key(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "model.predictor.deph=3"]) == 2
    assert "model.predictor.deph" in _error(capsys)


def test_missing_dataset(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "trajectories.h5" in _error(capsys)


def test_corrupt_dataset(tmp_path, capsys):
    (tmp_path / "trajectories.h5").write_bytes(b"not hdf5 at all")
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "trajectories.h5" in _error(capsys)


def test_bad_checkpoint(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"\x00" * 100)
    assert main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--out", str(tmp_path / "e")]) == 2
    assert "x.pt" in _error(capsys)
    assert not (tmp_path / "e").exists(), "nothing is written for a bad checkpoint"


def test_unknown_env(tmp_path, capsys):
    assert main(["collect", "--env", "mars", "--episodes", "1", "--out", str(tmp_path)]) == 2
    assert "wall" in _error(capsys)


def test_relative_paths_follow_the_root_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASET_ROOT", str(tmp_path / "datasets"))
    assert (
        main(
            [
                "collect",
                "--episodes",
                "2",
                "--episode-len",
                "4",
                "--img-size",
                "16",
                "--workers",
                "1",
                "--out",
                "wall_small",
            ]
        )
        == 0
    )
    assert (tmp_path / "datasets" / "wall_small" / "trajectories.h5").exists()


def test_numbers_out_of_range_are_refused_before_anything_runs(tmp_path, capsys):
    for flags, needle in (
        (["--episodes", "0"], "--episodes is 0; expected in [1, 100000]"),
        (["--episodes", "-3"], "--episodes is -3"),
        (["--episodes", str(10**12)], f"--episodes is {10**12}"),
        (["--seed", "-1"], "--seed is -1"),
    ):
        assert main(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "e"), *flags]) == 2
        assert needle in _error(capsys)
    assert main(["collect", "--workers", "0", "--out", str(tmp_path / "d")]) == 2
    assert "--workers is 0; expected >= 1" in _error(capsys)
    for override in ("train.epochs=0", "train.log_every=0"):
        assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"), override]) == 2
        assert override.split("=")[0] in _error(capsys)
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--data", "D", "--out", "O", "train.epochs=[1,"], "train.epochs=[1,"),
        (["train", "--data", "D", "--out", "O", "train.epochs=!!python/object/apply:os.getcwd []"], "not plain YAML"),
        (["eval", "--env", "wall", "--out", "O", "--device", "tpu", "plan.model=simulator"], "'tpu'"),
        (
            [
                "collect",
                "--episodes",
                "1",
                "--episode-len",
                "2",
                "--img-size",
                "16",
                "--workers",
                "1",
                "--out",
                "F/sub",
            ],
            "F/sub",
        ),
    ],
)
def test_user_mistakes_get_one_line_not_a_traceback(tmp_path, capsys, argv, needle):
    (tmp_path / "F").write_text("a file where a folder is expected")
    paths = {"D": str(tmp_path / "none"), "O": str(tmp_path / "o"), "F/sub": str(tmp_path / "F" / "sub")}
    assert main([paths.get(a, a) for a in argv]) == 2
    assert needle.replace("F/sub", paths["F/sub"]) in _error(capsys)
