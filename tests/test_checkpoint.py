import pickle

import pytest
import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint, load_state_strict, save_checkpoint


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
    with pytest.raises(CheckpointError, match=r"weight: checkpoint \(2, 4\) vs model \(2, 3\)"):
        load_state_strict(model, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, "f.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_state_strict(model, {"weight": torch.zeros(2, 3)}, "f.pt")
