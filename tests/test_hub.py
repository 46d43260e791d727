"""Published models: original checkpoint layout → our modules, by file or loopback URL; bad files are refused."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pickle

import pytest
import torch

from jepa_wms.checkpoint import CheckpointError
from jepa_wms.encoders import build_dinov2
from jepa_wms.hub import PUBLISHED_MODELS, export, load, read_original_checkpoint
from jepa_wms.predictors import AdaLNPredictor, DinoWMPredictor, VJepa2ACPredictor
from jepa_wms.saved_model import load_world_model
from jepa_wms.weights import WeightsUnavailableError
from tests.predictors.predictor_helpers import mix_weights

STATS = {"action_mean": [0.1, -0.2], "action_std": [0.5, 2.0], "proprio_mean": [3.0, 4.0], "proprio_std": [1.5, 2.5]}
GRID = (2, 2)  # the specs are shrunk to 28-px frames: 2×2 DINOv2 tokens


@pytest.fixture(autouse=True)
def _small_specs(monkeypatch, tmp_path):
    monkeypatch.setenv("PRETRAINED_CKPT_ROOT", str(tmp_path / "cache"))
    for name in ("jepa_wm_wall", "dino_wm_wall"):
        monkeypatch.setitem(PUBLISHED_MODELS, name, dataclasses.replace(PUBLISHED_MODELS[name], img_size=28))
    # The real V-JEPA-2-AC sits on a 1B-parameter ViT-g; its predictor mapping is what is tested here.
    small_ac = dataclasses.replace(
        PUBLISHED_MODELS["vjepa2_ac_oss"], encoder_type="dinov2", encoder_name="dinov2_vits14", img_size=28
    )
    monkeypatch.setitem(PUBLISHED_MODELS, "vjepa2_ac_oss", small_ac)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "dinov2_vits14_pretrain.pth"
    torch.save(build_dinov2("dinov2_vits14", img_size=28).state_dict(), path)
    return path


def _conv1d(linear: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"module.patch_embed.weight": linear["weight"][:, :, None], "module.patch_embed.bias": linear["bias"]}


def _original_file(kind: str, path, num_heads: int = 16, mix: bool = False, proprio_dim: int = 2) -> tuple:
    """A predictor of ours with random weights, saved the way the original training script saved it. ``mix``
    re-draws them at unit gain, so that every patch predicts clearly different proprio channels."""
    torch.manual_seed(1)
    extra: dict[str, dict] = {}
    if kind == "adaln":
        pred = AdaLNPredictor(384, 10, 16, pred_dim=176, depth=2, num_heads=num_heads, grid_size=GRID, rope="legacy")
        proprio = torch.nn.Linear(proprio_dim, 16)
        extra["proprio_encoder"] = _conv1d(proprio.state_dict())
    elif kind == "dino_wm":
        pred = DinoWMPredictor(
            384, 10, 10, GRID, num_frames=4, action_emb_dim=10, depth=2, num_heads=num_heads, dim_head=128 // num_heads
        )
        proprio = torch.nn.Linear(proprio_dim, 10)
        extra["proprio_encoder"] = _conv1d(proprio.state_dict())
    else:
        pred = VJepa2ACPredictor(
            384,
            7,
            2,
            pred_dim=192,
            depth=2,
            num_heads=num_heads,
            grid_size=GRID,
            predict_proprio=False,
            rope="legacy",
            normalize_reps=True,
        )
        proprio = None
    if mix:
        mix_weights(pred)
    if kind == "adaln":
        state = pred.state_dict()
    elif kind == "dino_wm":
        state = {k: v for k, v in pred.state_dict().items() if not k.startswith("action_encoder.")}
        extra["action_encoder"] = _conv1d(pred.action_encoder.state_dict())
        for i in range(2):  # the original stored its causal masks in every block
            state[f"transformer.layers.{i}.0.bias"] = torch.ones(1, 1, 16, 16)
    else:
        state = {k.replace("proprio_encoder.", "state_encoder."): v for k, v in pred.state_dict().items()}
    predictor = {f"module.{k}": v for k, v in state.items()}
    torch.save({"predictor": predictor, **extra, "opt": {"lr": torch.tensor(1.0)}, "epoch": 7}, path)
    return pred.eval(), proprio


CASES = [("jepa_wm_wall", "adaln"), ("dino_wm_wall", "dino_wm"), ("vjepa2_ac_oss", "vjepa2_ac")]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_original_checkpoint_gives_the_same_predictions(name, kind, tmp_path, encoder_file):
    ref, ref_proprio = _original_file(kind, tmp_path / "ckpt.pth.tar")
    stats = STATS if kind != "vjepa2_ac" else {k: [0.0] * 7 if "action" in k else [0.0, 1.0] for k in STATS}
    model, pre = load(name, tmp_path / "ckpt.pth.tar", encoder_file, stats=stats)
    torch.manual_seed(2)
    frames = 2
    z = torch.randn(1, frames, 4, 384)
    actions = torch.randn(1, frames, model.action_dim)
    p = torch.randn(1, frames, 2)
    ref_p = ref_proprio(p) if ref_proprio is not None else p
    if ref.proprio_per_patch:  # the original tiled the embedding over the patches and predicted it per patch
        ref_p = ref_p[:, :, None].expand(-1, -1, 4, -1)
    want = ref(z, actions, ref_p)
    got = model.predictor(z, actions, model._embed_proprio(model.proprio_latent(p)))
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-5)
    if want[1] is not None:
        torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-5)
    # The frozen encoder is the file's, and the preprocessor uses the model's pixel convention.
    pixels = torch.randint(0, 256, (1, 1, 28, 28, 3), dtype=torch.uint8)
    enc = build_dinov2("dinov2_vits14", img_size=28, weights=encoder_file)
    mean = PUBLISHED_MODELS[name].pixel_norm[0]
    assert model.encoder.mean == mean
    tokens = enc(pre.transform(pixels[0]))
    if PUBLISHED_MODELS[name].normalize_reps:  # V-JEPA-2-AC layer-normed the encoder's tokens too
        tokens = torch.nn.functional.layer_norm(tokens, tokens.shape[-1:])
    torch.testing.assert_close(model.encode(pixels).visual[0], tokens, rtol=0, atol=1e-5)
    assert model.predictor.context_window == 2, "the original planned on windows of 2 frames"


def _adaln_forward(pred: AdaLNPredictor, z, a, p):
    """The AdaLN predictor on one window with the original's per-patch proprio features ``p (B, T, N, E)``: they
    are the last channels of every patch token, and each patch's output channels are its proprio prediction."""
    frames, n = z.shape[1:3]
    x = torch.cat([pred.predictor_embed(z), p], -1)
    cond = pred.action_encoder(a)
    pos = pred.rope.grid_positions(frames, *pred.grid_size)
    frame = torch.arange(frames).repeat_interleave(n)
    mask = frame[None, :] <= frame[:, None]
    for block in pred.predictor_blocks:
        x = block(x, cond, pos, mask)
    x = pred.predictor_norm(x)
    return pred.predictor_proj(x[..., : pred.pred_dim]), x[..., pred.pred_dim :]


def _dino_wm_forward(pred: DinoWMPredictor, z, a, p):
    """The DINO-WM predictor on one window: ``[visual | proprio | action]`` channels per patch, learned positions."""
    frames, n, d = z.shape[1:]
    act = pred.action_encoder(a)[:, :, None].expand(-1, -1, n, -1)
    x = torch.cat([z, p, act], -1).flatten(1, 2) + pred.pos_embedding[:, : frames * n]
    frame = torch.arange(frames).repeat_interleave(n)
    mask = frame[None, :] <= frame[:, None]
    for attn, ff in pred.transformer.layers:
        x = x + attn(x, mask)
        x = x + ff(x)
    x = pred.transformer.norm(x).unflatten(1, (frames, n))
    return x[..., :d], x[..., d : d + p.shape[-1]]


def _original_unroll(forward, z0, p0, actions, per_patch: bool = True):
    """The original planner's unroll from one frame: every step re-runs the last 2 frames from position 0 and
    appends the last prediction, proprio per patch (``per_patch=False``: its patch mean, tiled, as we did)."""
    zs, ps, acts = [z0], [p0], []
    for h in range(actions.shape[1]):
        acts.append(actions[:, h : h + 1])
        z_pred, p_pred = forward(torch.cat(zs[-2:], 1), torch.cat(acts[-2:], 1), torch.cat(ps[-2:], 1))
        p_next = p_pred[:, -1:] if per_patch else p_pred[:, -1:].mean(2, keepdim=True).expand_as(p_pred[:, -1:])
        zs.append(z_pred[:, -1:])
        ps.append(p_next)
    return torch.cat(zs[1:], 1), torch.cat(ps[1:], 1)


@pytest.mark.parametrize(("name", "kind"), CASES[:2])
def test_original_layout_rollouts_feed_back_per_patch_proprio(name, kind, tmp_path, encoder_file):
    ref, ref_proprio = _original_file(kind, tmp_path / "ckpt.pth.tar", mix=True)
    model, _ = load(name, tmp_path / "ckpt.pth.tar", encoder_file, stats=STATS)
    forward = functools.partial(_adaln_forward if kind == "adaln" else _dino_wm_forward, ref)
    torch.manual_seed(3)
    pixels = torch.randint(0, 256, (2, 1, 28, 28, 3), dtype=torch.uint8)
    raw = torch.randn(2, 1, 2)
    actions = torch.randn(2, 6, model.action_dim)
    mean, std = (torch.tensor(STATS[k]) for k in ("proprio_mean", "proprio_std"))
    with torch.no_grad():
        ctx = model.encode(pixels, raw)
        p0 = ref_proprio((raw - mean) / std)[:, :, None].expand(-1, -1, 4, -1)  # the original tiled it on encoding
        got = model.rollout(ctx, actions)
        want_z, want_p = _original_unroll(forward, ctx.visual, p0, actions)
        mean_z, _ = _original_unroll(forward, ctx.visual, p0, actions, per_patch=False)
    assert got.proprio.shape == want_p.shape == (2, 6, 4, p0.shape[-1])
    assert (got.visual - want_z).abs().max() <= 1e-4 and (got.proprio - want_p).abs().max() <= 1e-4
    # Feeding back the patch mean instead drifts from step 2 on: the check above tells the two apart.
    assert (mean_z[:, 0] - want_z[:, 0]).abs().max() <= 1e-4 and (mean_z - want_z).abs().max() > 1e-2


def test_head_count_is_an_option_because_no_tensor_records_it(tmp_path, encoder_file):
    ref, _ = _original_file("vjepa2_ac", tmp_path / "ckpt.pth.tar", num_heads=8)
    stats = {k: [0.0] * 7 if "action" in k else [0.0, 1.0] for k in STATS}
    z, actions, p = torch.randn(1, 2, 4, 384), torch.randn(1, 2, 7), torch.randn(1, 2, 2)
    want, _ = ref(z, actions, p)
    wrong, _ = load("vjepa2_ac_oss", tmp_path / "ckpt.pth.tar", encoder_file, stats=stats)  # the release's 16
    assert wrong.predictor.predictor_blocks[0].attn.num_heads == 16
    assert (wrong.predictor(z, actions, p)[0] - want).abs().max() > 1e-2, "a wrong head count loads and mispredicts"
    model, _ = load("vjepa2_ac_oss", tmp_path / "ckpt.pth.tar", encoder_file, stats=stats, num_heads=8)
    torch.testing.assert_close(model.predictor(z, actions, p)[0], want, rtol=0, atol=1e-5)
    with pytest.raises(CheckpointError, match=r"width 192 .* num_heads=5 heads\. No tensor records the head count"):
        load("vjepa2_ac_oss", tmp_path / "ckpt.pth.tar", encoder_file, stats=stats, num_heads=5)
    # The CLI passes --num-heads to export(), which writes it into the checkpoint's config.
    from jepa_wms.cli import main

    seen = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("jepa_wms.hub.export", lambda *args, **kwargs: seen.update(kwargs) or tmp_path / "x.pt")
        assert main(["hub", "vjepa2_ac_oss", "--out", str(tmp_path / "x.pt"), "--num-heads", "8"]) == 0
    assert seen["num_heads"] == 8


def test_stats_come_from_the_release_or_must_be_given(tmp_path, encoder_file):
    _original_file("adaln", tmp_path / "ckpt.pth.tar")
    with pytest.raises(ValueError, match="dataset="):
        load("jepa_wm_wall", tmp_path / "ckpt.pth.tar", encoder_file)
    model, pre = load("jepa_wm_wall", tmp_path / "ckpt.pth.tar", encoder_file, stats=STATS)
    raw = torch.tensor([[[1.1, 1.8]] * 5])
    torch.testing.assert_close(pre.normalize_actions(raw), torch.tensor([[2.0, 1.0] * 5]))


def test_loading_by_url_uses_the_hub_cache_and_falls_back_to_the_mirror(server, monkeypatch, tmp_path, encoder_file):
    url, served, hits, _ = server
    spec = PUBLISHED_MODELS["jepa_wm_wall"]
    _original_file("adaln", served / spec.file)
    monkeypatch.setattr("jepa_wms.hub.specs.HF_BASE", f"{url}/missing")
    monkeypatch.setattr("jepa_wms.hub.specs.FAIR_BASE", url)
    load("jepa_wm_wall", encoder_checkpoint=encoder_file, stats=STATS)
    assert (tmp_path / "cache" / spec.file).is_file()
    assert hits == [f"/missing/{spec.name}.pth.tar", f"/{spec.file}"]
    load("jepa_wm_wall", encoder_checkpoint=encoder_file, stats=STATS)
    assert len(hits) == 2, "the second load must come from the cache"


def test_offline_error_says_where_to_put_the_file(monkeypatch, tmp_path, encoder_file):
    monkeypatch.setattr("jepa_wms.hub.specs.HF_BASE", "http://127.0.0.1:9/none")
    monkeypatch.setattr("jepa_wms.hub.specs.FAIR_BASE", "http://127.0.0.1:9/none")
    with pytest.raises(WeightsUnavailableError, match="wall_jepa-wm.pth.tar"):
        load("jepa_wm_wall", encoder_checkpoint=encoder_file, stats=STATS)


def test_bad_files_are_refused(tmp_path, encoder_file):
    ckpt = tmp_path / "ckpt.pth.tar"
    _original_file("dino_wm", ckpt)
    with pytest.raises(CheckpointError, match="dino_wm predictor, but jepa_wm_wall is a adaln"):
        load("jepa_wm_wall", ckpt, encoder_file, stats=STATS)
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(ckpt.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_original_checkpoint(truncated)

    class Payload:
        def __reduce__(self):
            return (print, ("this would run on load",))

    evil = tmp_path / "evil.pth.tar"
    torch.save({"predictor": {}, "hook": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        read_original_checkpoint(evil)
    plain = tmp_path / "plain.pth.tar"
    with open(plain, "wb") as f:
        pickle.dump({"model": {}}, f)
    with pytest.raises(CheckpointError):
        read_original_checkpoint(plain)
    with pytest.raises(ValueError, match="unknown published model"):
        load("jepa_wm_nowhere")


def test_export_plans_with_jepa_wms_eval_tools(tmp_path, encoder_file):
    _original_file("adaln", tmp_path / "ckpt.pth.tar")
    model, _ = load("jepa_wm_wall", tmp_path / "ckpt.pth.tar", encoder_file, stats=STATS)
    path = export("jepa_wm_wall", tmp_path / "wall.pt", tmp_path / "ckpt.pth.tar", encoder_file, stats=STATS)
    encoder_file.rename(encoder_file.with_suffix(".moved"))  # the export holds the encoder weights itself
    try:
        again, cfg, _ = load_world_model(path)
    finally:
        encoder_file.with_suffix(".moved").rename(encoder_file)
    assert cfg.model.predictor.rope == "legacy" and cfg.model.proprio_space == "embedding"
    pixels = torch.randint(0, 256, (2, 1, 28, 28, 3), dtype=torch.uint8)
    ctx = model.encode(pixels, torch.randn(2, 1, 2))
    acts = torch.randn(2, 3, model.action_dim)
    a, b = model.rollout(ctx, acts), again.rollout(ctx, acts)
    torch.testing.assert_close(a.visual, b.visual)
    torch.testing.assert_close(a.proprio, b.proprio)


def test_hubconf_exposes_every_name(tmp_path, encoder_file):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    hubconf = importlib.util.spec_from_file_location("hubconf", repo / "hubconf.py")
    module = importlib.util.module_from_spec(hubconf)
    hubconf.loader.exec_module(module)
    assert {n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")} == set(PUBLISHED_MODELS)
    _original_file("adaln", tmp_path / "ckpt.pth.tar")
    model, pre = torch.hub.load(
        str(repo),
        "jepa_wm_wall",
        source="local",
        checkpoint=tmp_path / "ckpt.pth.tar",
        encoder_checkpoint=encoder_file,
        stats=STATS,
    )
    assert isinstance(model.predictor, AdaLNPredictor) and model.predictor.context_window == 2
    assert pre.model is model


def test_package_exposes_the_hub():
    import jepa_wms

    assert jepa_wms.hub.load is load and "hub" in dir(jepa_wms)
    assert jepa_wms.NevergradPlanner.__name__ == "NevergradPlanner"


def test_cli_lists_and_exports(tmp_path, encoder_file, capsys):
    from jepa_wms.cli import main

    assert main(["hub", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PUBLISHED_MODELS)
    assert main(["hub", "jepa_wm_pusht", "--out", str(tmp_path / "x.pt"), "--checkpoint", str(tmp_path / "no")]) == 2
    assert "does not exist" in capsys.readouterr().err
