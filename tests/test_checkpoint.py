import os
import pickle
import stat

import pytest
import torch

from jepa_wms.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)


def test_round_trip_is_bit_exact(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    save_checkpoint(tmp_path / "c.pt", {"model": state, "config": {"env": "wall"}, "epoch": 2, "step": 7})
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["epoch"] == 2 and ckpt["step"] == 7
    assert torch.equal(ckpt["model"]["w"], state["w"]) and torch.equal(ckpt["model"]["b"], state["b"])
    assert not list(tmp_path.glob("*.tmp")), "the temporary file must be renamed away"


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_truncated_file_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.randn(100, 100)}, "config": {}})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="t.pt"):
        load_checkpoint(tmp_path / "t.pt")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="x.pt"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a jepa-wms checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "jepa-wms-checkpoint", "payload": _Evil()}, f)
    torch.save({"format": "jepa-wms-checkpoint", "x": _Evil()}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)
    assert "code ran" not in capsys.readouterr().out


def test_wrong_model_type_and_version(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "config": {}})
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    torch.save({**ckpt, "model_type": "dino_wm"}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="dino_wm"):
        load_checkpoint(tmp_path / "d.pt")
    torch.save({**ckpt, "format_version": 99}, tmp_path / "v.pt")
    with pytest.raises(CheckpointError, match="format_version"):
        load_checkpoint(tmp_path / "v.pt")


def test_strict_load_names_keys_and_shapes():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(
        CheckpointError, match=r"f.pt: does not fit this model; shape mismatches: weight \(2, 4\) vs expected \(2, 3\)"
    ):
        load_state_strict(model, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, "f.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_state_strict(model, {"weight": torch.zeros(2, 3)}, "f.pt")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_atomic_write_gives_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "results.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o666 & ~umask


def test_resume_removes_temporaries_of_killed_writes(tiny_dataset, tiny_checkpoint, tmp_path):
    import shutil

    from jepa_wms.config import load_config
    from jepa_wms.training import train
    from tests.conftest import TINY

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent.parent, run)
    stale = [run / "checkpoints" / ".last.pt.k2j4h5.tmp", run / ".log.csv.x81kq0.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    train(load_config("wall", [*TINY, "train.epochs=3"]), tiny_dataset.parent, run, resume=True, show_progress=False)
    assert not any(p.exists() for p in stale)


class _Opaque:  # any class: torch's weights_only unpickler refuses to import it
    pass


class _System:  # a global of a module torch blocks outright
    def __reduce__(self):
        return (os.system, ("echo code ran",))


@pytest.mark.parametrize(
    "payload, needle", [(_Opaque(), "global tests.test_checkpoint._Opaque"), (_System(), f"global {os.name}")]
)
def test_refusal_names_the_global_and_never_advises_an_unsafe_load(tmp_path, capfd, payload, needle):
    torch.save({"format": "jepa-wms-checkpoint", "x": payload}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "bad.pt")
    message = str(err.value)
    assert "bad.pt was refused" in message and needle in message
    assert "weights_only` set to `False" not in message and "can still be loaded" not in message
    assert "\n" not in message and "code ran" not in capfd.readouterr().out


def test_checkpoint_whose_env_does_not_match_its_dims(tmp_path):
    from jepa_wms.config import load_config
    from jepa_wms.saved_model import load_world_model
    from jepa_wms.world_model import build_world_model
    from tests.conftest import TINY

    cfg = load_config("wall", TINY)
    model = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=cfg.data.frameskip)
    payload = {"model": model.state_dict(), "dims": {"raw_action_dim": 2, "proprio_dim": 2}}
    save_checkpoint(tmp_path / "wall.pt", {**payload, "config": cfg.to_dict()})
    load_world_model(tmp_path / "wall.pt")
    # The same model labelled Push-T (proprio of 4): planning would fail on its first step.
    save_checkpoint(tmp_path / "pusht.pt", {**payload, "config": {**cfg.to_dict(), "env": "pusht"}})
    with pytest.raises(CheckpointError, match=r"pusht.pt is for env 'pusht' but its model has proprio_dim 2 \(the env"):
        load_world_model(tmp_path / "pusht.pt")
