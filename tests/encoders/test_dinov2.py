import pytest
import torch
import torch.nn.functional as F

from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.dinov2 import (
    DINOV2_MODELS,
    DinoV2Encoder,
    DinoV2Spec,
    build_dinov2,
    load_dinov2_weights,
    swiglu_hidden_dim,
)

# Written from the published model cards, independently of the module: (D, depth, heads, SwiGLU hidden or None).
SIZES = {"s": (384, 12, 6, None), "b": (768, 12, 12, None), "l": (1024, 24, 16, None), "g": (1536, 40, 24, 4096)}
PARAMS_M = {"s": 22.06, "b": 86.6, "l": 304.0, "g": 1136.0}


def expected_shapes(dim: int, depth: int, hidden: int | None, registers: bool) -> dict[str, tuple[int, ...]]:
    shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + 37 * 37, dim),
        "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, 14, 14),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    if registers:
        shapes["register_tokens"] = (1, 4, dim)
    for i in range(depth):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            shapes[b + norm + ".weight"] = shapes[b + norm + ".bias"] = (dim,)
        shapes[b + "attn.qkv.weight"], shapes[b + "attn.qkv.bias"] = (3 * dim, dim), (3 * dim,)
        shapes[b + "attn.proj.weight"], shapes[b + "attn.proj.bias"] = (dim, dim), (dim,)
        shapes[b + "ls1.gamma"] = shapes[b + "ls2.gamma"] = (dim,)
        if hidden is None:
            shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (4 * dim, dim), (4 * dim,)
            shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (dim, 4 * dim), (dim,)
        else:
            shapes[b + "mlp.w12.weight"], shapes[b + "mlp.w12.bias"] = (2 * hidden, dim), (2 * hidden,)
            shapes[b + "mlp.w3.weight"], shapes[b + "mlp.w3.bias"] = (dim, hidden), (dim,)
    return shapes


@pytest.fixture(scope="module")
def vits14():
    torch.manual_seed(0)
    return build_dinov2("dinov2_vits14")


def test_presets_cover_the_eight_official_names():
    names = {f"dinov2_vit{s}14{r}" for s in SIZES for r in ("", "_reg")}
    assert set(DINOV2_MODELS) == names
    assert swiglu_hidden_dim(1536) == 4096


@pytest.mark.parametrize("name", sorted(DINOV2_MODELS))
def test_state_dict_keys_shapes_and_param_count_match_official(name):
    size, registers = name[len("dinov2_vit")], name.endswith("_reg")
    dim, depth, heads, hidden = SIZES[size]
    with torch.device("meta"):
        model = build_dinov2(name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_shapes(dim, depth, hidden, registers)
    assert model.blocks[0].attn.num_heads == heads and model.embed_dim == dim
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert count == pytest.approx(PARAMS_M[size], rel=0.01)


def test_vits14_token_grid_at_224(vits14):
    assert isinstance(vits14, Encoder) and vits14.grid_size == (16, 16) and vits14.num_tokens == 256
    x = torch.randn(2, 3, 224, 224)
    tokens = vits14(x)
    assert tokens.shape == (2, 256, 384)
    # The output is final-LayerNorm'd: zero mean, unit variance per token before the affine part (identity at init).
    torch.testing.assert_close(tokens.mean(-1), torch.zeros(2, 256), atol=1e-4, rtol=0)
    feats = vits14.forward_features(x)
    assert feats["x_norm_clstoken"].shape == (2, 384) and feats["x_norm_regtokens"].shape == (2, 0, 384)
    assert feats["x_prenorm"].shape == (2, 257, 384)
    torch.testing.assert_close(feats["x_norm_patchtokens"], tokens)


def test_patch_tokens_are_row_major():
    torch.manual_seed(0)
    # A trunk with no blocks isolates the patch embedding: token r·cols + c must only see patch (r, c).
    model = DinoV2Encoder(DinoV2Spec(24, 1, 2), img_size=28, pos_grid=2)
    model.blocks = torch.nn.ModuleList()
    x = torch.zeros(1, 3, 28, 42)
    base = model.forward_features(x)["x_norm_patchtokens"]
    x[:, :, 14:28, 28:42] = 1.0  # patch (row 1, col 2) of a 2×3 grid
    changed = (model.forward_features(x)["x_norm_patchtokens"] - base).abs().sum(-1)[0]
    assert changed.nonzero().flatten().tolist() == [1 * 3 + 2]


def test_save_and_reload_strictly_gives_identical_outputs(vits14, tmp_path):
    path = tmp_path / "vits14.pth"
    torch.save(vits14.state_dict(), path)
    torch.manual_seed(123)  # a different random init, so equality can only come from the loaded weights
    fresh = build_dinov2("dinov2_vits14", weights=path)
    x = torch.randn(1, 3, 224, 224)
    assert not torch.equal(build_dinov2("dinov2_vits14")(x), vits14(x))
    torch.testing.assert_close(fresh(x), vits14(x), atol=0, rtol=0)
    assert not fresh.training and not any(p.requires_grad for p in fresh.parameters())


def test_mismatched_checkpoint_names_keys_and_file(vits14, tmp_path):
    state = dict(vits14.state_dict())
    state["register_tokens"] = torch.zeros(1, 4, 384)  # as a _reg file would carry
    del state["norm.bias"]
    state["blocks.3.attn.qkv.weight"] = torch.zeros(3 * 768, 768)  # as a ViT-B file would carry
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        build_dinov2("dinov2_vits14", weights=path)
    message = str(err.value)
    for fragment in ("wrong.pth", "missing keys: norm.bias", "unexpected keys: register_tokens", "blocks.3.attn.qkv"):
        assert fragment in message
    assert "(2304, 768) vs expected (1152, 384)" in message
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_dinov2("dinov2_vits14", weights=tmp_path / "nope.pth")
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match="flat state dict"):
        load_dinov2_weights(vits14, path)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_weights_carrying_code_are_refused_by_the_shared_reader(tmp_path, capsys):
    model = DinoV2Encoder(DinoV2Spec(24, 1, 2), img_size=28, pos_grid=4)
    torch.save({**model.state_dict(), "payload": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=r"evil.pth was refused \(global print\): only tensors") as err:
        load_dinov2_weights(model, tmp_path / "evil.pth")
    assert "weights_only` set to `False" not in str(err.value) and "code ran" not in capsys.readouterr().out


def test_unknown_name_and_bad_sizes_raise():
    with pytest.raises(ValueError, match="dinov2_vits14_reg"):
        build_dinov2("dinov2_vits16")
    with pytest.raises(ValueError, match="multiple of 14"):
        build_dinov2("dinov2_vits14", img_size=200)
    model = DinoV2Encoder(DinoV2Spec(24, 1, 2), img_size=28, pos_grid=4)
    with pytest.raises(ValueError, match=r"\(B, 3, 28, 28\)"):
        model(torch.zeros(1, 3, 42, 42))


def test_pos_embed_at_pretrain_grid_is_the_stored_table(vits14, monkeypatch):
    # 518 px = 37×37 patches: no resize at all, even though the legacy +0.1 offset would move samples.
    assert vits14.pos_embed_for_grid(37, 37) is vits14.pos_embed
    model = DinoV2Encoder(DinoV2Spec(24, 1, 2), img_size=518)
    calls = []
    original = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert model.forward_features(torch.randn(1, 3, 518, 518))["x_norm_patchtokens"].shape == (1, 1369, 24)
    assert calls == []
    model.pos_embed_for_grid(16, 16)
    assert calls == [1]  # the spy does see a real resize


def test_pos_embed_resize_follows_each_model_family():
    torch.manual_seed(0)
    legacy = DinoV2Encoder(DinoV2Spec(8, 1, 2), pos_grid=6)
    reg_spec = DinoV2Spec(8, 1, 2, num_register_tokens=4, interpolate_offset=0.0, interpolate_antialias=True)
    reg = DinoV2Encoder(reg_spec, pos_grid=6)
    reg.load_state_dict({**reg.state_dict(), "pos_embed": legacy.pos_embed.detach()})
    grid = legacy.pos_embed[:, 1:].detach().reshape(1, 6, 6, 8).permute(0, 3, 1, 2)

    def flat(g):
        return torch.cat((legacy.pos_embed[:, :1].detach(), g.permute(0, 2, 3, 1).reshape(1, -1, 8)), dim=1)

    with torch.no_grad():
        # Original checkpoints: bicubic, no antialias, sampling set by (out + 0.1) / in; registers: sized, antialiased.
        want_legacy = flat(F.interpolate(grid, scale_factor=(4.1 / 6, 3.1 / 6), mode="bicubic"))
        want_reg = flat(F.interpolate(grid, size=(4, 3), mode="bicubic", antialias=True))
        got_legacy, got_reg = legacy.pos_embed_for_grid(4, 3), reg.pos_embed_for_grid(4, 3)
    torch.testing.assert_close(got_legacy, want_legacy)
    torch.testing.assert_close(got_reg, want_reg)
    assert not torch.allclose(got_legacy, got_reg, atol=1e-3)
    plain = flat(F.interpolate(grid, size=(4, 3), mode="bicubic"))
    assert not torch.allclose(got_legacy, plain, atol=1e-4)  # the offset really changes the samples


def test_pos_embed_cache_is_reused_and_invalidated_by_new_weights():
    model = DinoV2Encoder(DinoV2Spec(8, 1, 2), pos_grid=6)
    first = model.pos_embed_for_grid(4, 4)
    assert model.pos_embed_for_grid(4, 4) is first
    model.load_state_dict({**model.state_dict(), "pos_embed": torch.ones(1, 37, 8)})
    again = model.pos_embed_for_grid(4, 4)
    assert again is not first
    torch.testing.assert_close(again, torch.ones(1, 17, 8))  # bicubic keeps a constant table constant


def reference_forward(model: DinoV2Encoder, x: torch.Tensor) -> torch.Tensor:
    """Hand-written DINOv2 trunk for a model whose input grid equals its stored grid; returns x_prenorm."""
    dim, heads = model.embed_dim, model.blocks[0].attn.num_heads
    patches = F.conv2d(x, model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=14)
    tokens = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), patches.flatten(2).mT), 1) + model.pos_embed
    regs = model.register_tokens.expand(x.shape[0], -1, -1)
    tokens = torch.cat((tokens[:, :1], regs, tokens[:, 1:]), 1)
    for blk in model.blocks:
        h = F.layer_norm(tokens, (dim,), blk.norm1.weight, blk.norm1.bias, eps=1e-6)
        q, k, v = F.linear(h, blk.attn.qkv.weight, blk.attn.qkv.bias).chunk(3, -1)
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.mT / (dim // heads) ** 0.5, -1) @ v
        tokens = tokens + blk.ls1.gamma * blk.attn.proj(att.transpose(1, 2).flatten(2))
        h = F.layer_norm(tokens, (dim,), blk.norm2.weight, blk.norm2.bias, eps=1e-6)
        a, b = F.linear(h, blk.mlp.w12.weight, blk.mlp.w12.bias).chunk(2, -1)
        tokens = tokens + blk.ls2.gamma * blk.mlp.w3(F.silu(a) * b)
    return tokens


def test_forward_matches_hand_written_trunk_with_registers_and_swiglu():
    torch.manual_seed(0)
    spec = DinoV2Spec(48, 2, 4, ffn="swiglu", num_register_tokens=4, interpolate_offset=0.0)
    model = DinoV2Encoder(spec, img_size=42, pos_grid=3, init_values=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # break the init symmetries (ones/zeros) the reference could hide
        x = torch.randn(2, 3, 42, 42)
        feats = model.forward_features(x)
        prenorm = reference_forward(model, x)
    torch.testing.assert_close(feats["x_prenorm"], prenorm, atol=1e-5, rtol=1e-5)
    normed = F.layer_norm(prenorm, (48,), model.norm.weight, model.norm.bias, eps=1e-6)
    torch.testing.assert_close(feats["x_norm_regtokens"], normed[:, 1:5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x), normed[:, 5:], atol=1e-5, rtol=1e-5)
    assert model.blocks[0].mlp.w3.in_features == swiglu_hidden_dim(48) == 128


def test_frozen_by_default_trainable_on_request():
    frozen = DinoV2Encoder(DinoV2Spec(16, 1, 2), img_size=28, pos_grid=2)
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    pixels = torch.randint(0, 256, (1, 2, 30, 40, 3), dtype=torch.uint8)
    assert not frozen.encode_frames(pixels).requires_grad
    trainable = DinoV2Encoder(DinoV2Spec(16, 1, 2), img_size=28, pos_grid=3, trainable=True)
    assert trainable.training
    trainable.encode_frames(pixels).pow(2).mean().backward()
    # pos_embed gets gradients through the (uncached) resize; mask_token is unused, as in DINOv2 inference.
    grads = {n for n, p in trainable.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {"pos_embed", "cls_token", "patch_embed.proj.weight", "blocks.0.ls1.gamma"} <= grads
    assert "mask_token" not in grads
    assert frozen.mean == (0.485, 0.456, 0.406) and frozen.std == (0.229, 0.224, 0.225)
