"""The README's Python blocks run as written (in a temporary folder)."""

import dataclasses
import re
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def _python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2, "README has the Quick tour block and the released-models block"
    return blocks


def test_readme_python_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_blocks()[0], "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "torch.Size([1, 6, 1, 64])" in out
    assert (tmp_path / "runs/api/eval/results.json").exists()


def test_readme_released_models_block_runs(tmp_path, monkeypatch):
    """Offline: the files the block would download are in the cache already (small models in the release's layout,
    28-px frames), the clone it names is this repository, and its local checkpoint lies in the working folder."""
    from jepa_wms.encoders import build_dinov2
    from jepa_wms.hub import PUBLISHED_MODELS
    from tests.test_hub import _original_file

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("PRETRAINED_CKPT_ROOT", str(cache))
    for name in ("jepa_wm_pusht", "dino_wm_pointmaze"):
        monkeypatch.setitem(PUBLISHED_MODELS, name, dataclasses.replace(PUBLISHED_MODELS[name], img_size=28))
    torch.manual_seed(0)
    torch.save(build_dinov2("dinov2_vits14", img_size=28).state_dict(), cache / "dinov2_vits14_pretrain.pth")
    _original_file("adaln", cache / PUBLISHED_MODELS["jepa_wm_pusht"].file, proprio_dim=4)
    _original_file("dino_wm", tmp_path / "mz_dino-wm.pth.tar", proprio_dim=4)
    (tmp_path / "jepa-wms").symlink_to(REPO)
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "__readme__"}
    exec(compile(_python_blocks()[1], "README.md", "exec"), scope)
    model, preprocessor = scope["model"], scope["preprocessor"]
    assert type(model.predictor).__name__ == "DinoWMPredictor" and preprocessor.model is model
