import math

import pytest
import torch
import torch.nn.functional as F

from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.dinov3 import (
    ACCESS_URL,
    DINOV3_MODELS,
    DinoV3Encoder,
    DinoV3Spec,
    build_dinov3,
    dinov3_rope_sincos,
    load_dinov3_weights,
)
from jepa_wms.weights import WeightsUnavailableError

# From the official hub entry points (dinov3/hub/backbones.py), independently of the module: (D, depth, heads).
SIZES = {"dinov3_vits16": (384, 12, 6), "dinov3_vitl16": (1024, 24, 16)}
# Published sizes (model card: ViT-S/16 21M, ViT-L/16 300M) and the exact counts of the released tensors.
PARAMS = {"dinov3_vits16": (21.6e6, 21_601_152), "dinov3_vitl16": (300e6, 303_154_176)}


def expected_shapes(dim: int, depth: int, heads: int) -> dict[str, tuple[int, ...]]:
    shapes = {
        "cls_token": (1, 1, dim),
        "storage_tokens": (1, 4, dim),
        "mask_token": (1, dim),
        "rope_embed.periods": (dim // heads // 4,),
        "patch_embed.proj.weight": (dim, 3, 16, 16),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            shapes[b + norm + ".weight"] = shapes[b + norm + ".bias"] = (dim,)
        shapes[b + "attn.qkv.weight"] = (3 * dim, dim)
        shapes[b + "attn.qkv.bias"] = shapes[b + "attn.qkv.bias_mask"] = (3 * dim,)
        shapes[b + "attn.proj.weight"], shapes[b + "attn.proj.bias"] = (dim, dim), (dim,)
        shapes[b + "ls1.gamma"] = shapes[b + "ls2.gamma"] = (dim,)
        shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (4 * dim, dim), (4 * dim,)
        shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (dim, 4 * dim), (dim,)
    return shapes


def tiny(seed: int = 0, img_size: int = 32) -> DinoV3Encoder:
    torch.manual_seed(seed)
    model = DinoV3Encoder(DinoV3Spec(32, 2, 2), img_size=img_size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # break the init symmetries (ones/zeros) a reference could hide
    return model


def test_presets_are_the_two_lvd_models():
    assert set(DINOV3_MODELS) == set(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_state_dict_keys_shapes_and_param_count_match_official(name):
    dim, depth, heads = SIZES[name]
    with torch.device("meta"):
        model = build_dinov3(name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_shapes(dim, depth, heads)
    assert model.blocks[0].attn.num_heads == heads and model.embed_dim == dim
    published, exact = PARAMS[name]
    count = sum(p.numel() for p in model.parameters())
    assert count == exact and count == pytest.approx(published, rel=0.02)


def test_vitl16_gives_a_16x16x1024_grid_at_256():
    with torch.device("meta"):
        model = build_dinov3("dinov3_vitl16", img_size=256)
        tokens = model(torch.empty(2, 3, 256, 256))
    assert isinstance(model, Encoder) and model.grid_size == (16, 16)
    assert tokens.shape == (2, 256, 1024)
    assert model.mean == (0.485, 0.456, 0.406) and model.std == (0.229, 0.224, 0.225)


def test_rope_tables_match_an_independent_formula():
    periods = torch.tensor([1.0, 1.7, 4.2, 9.5])  # head_dim 16, arbitrary (as loaded from a file)
    rows, cols = 3, 2
    sin, cos = dinov3_rope_sincos(periods, rows, cols)
    assert sin.shape == cos.shape == (rows * cols, 16)
    for r in range(rows):
        for c in range(cols):
            y, x = (r + 0.5) / rows * 2 - 1, (c + 0.5) / cols * 2 - 1
            for j in range(16):
                k = j % 8  # tiled twice; the first 4 of each half use the row, the next 4 the column
                angle = 2 * math.pi * (y if k < 4 else x) / periods[k % 4].item()
                assert cos[r * cols + c, j].item() == pytest.approx(math.cos(angle), abs=1e-6)
                assert sin[r * cols + c, j].item() == pytest.approx(math.sin(angle), abs=1e-6)


def test_default_periods_and_the_released_bf16_rounding():
    model = DinoV3Encoder(DinoV3Spec(256, 1, 4), img_size=16)  # head_dim 64, as both released sizes
    periods = model.rope_embed.periods
    torch.testing.assert_close(periods, torch.tensor([100 ** (j / 16) for j in range(16)]))
    # The released files hold these values rounded to bf16 (1.0, 1.3359375, 1.78125, ...).
    assert periods.bfloat16()[:3].tolist() == [1.0, 1.3359375, 1.78125]


def reference_prenorm(model: DinoV3Encoder, x: torch.Tensor) -> torch.Tensor:
    """Hand-written DINOv3 trunk: per-channel RoPE on patch tokens, key bias removed by the mask, LayerScale."""
    dim, heads = model.embed_dim, model.spec.num_heads
    hd, rows, cols = dim // heads, x.shape[2] // 16, x.shape[3] // 16
    patches = F.conv2d(x, model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=16).flatten(2).mT
    batch = x.shape[0]
    tokens = torch.cat((model.cls_token.expand(batch, -1, -1), model.storage_tokens.expand(batch, -1, -1), patches), 1)
    sin, cos = dinov3_rope_sincos(model.rope_embed.periods, rows, cols)
    half = hd // 2
    partner = torch.cat((torch.arange(half, hd), torch.arange(half)))
    sign = torch.cat((-torch.ones(half), torch.ones(half)))

    def rope(t):  # channel j mixes with j ± hd/2: out_j = t_j cos_j + sign_j t_partner(j) sin_j
        body = t[:, :, 5:]
        return torch.cat((t[:, :, :5], body * cos + sign * body[..., partner] * sin), dim=2)

    for blk in model.blocks:
        h = F.layer_norm(tokens, (dim,), blk.norm1.weight, blk.norm1.bias, eps=1e-5)
        bias = blk.attn.qkv.bias.clone()
        bias[dim : 2 * dim] = 0.0
        q, k, v = F.linear(h, blk.attn.qkv.weight, bias).chunk(3, -1)
        q, k, v = (t.unflatten(-1, (heads, hd)).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q), rope(k)
        att = torch.softmax(q @ k.mT / hd**0.5, -1) @ v
        tokens = tokens + blk.ls1.gamma * blk.attn.proj(att.transpose(1, 2).flatten(2))
        h = F.layer_norm(tokens, (dim,), blk.norm2.weight, blk.norm2.bias, eps=1e-5)
        tokens = tokens + blk.ls2.gamma * blk.mlp.fc2(F.gelu(blk.mlp.fc1(h)))
    return tokens


def test_forward_matches_hand_written_trunk():
    model = tiny()
    with torch.no_grad():
        model.rope_embed.periods.copy_(torch.tensor([1.0, 1.3359375, 1.78125, 2.375]))
        x = torch.randn(2, 3, 48, 32)  # non-square: rows and cols normalise separately
        feats = model.forward_features(x)
        prenorm = reference_prenorm(model, x)
    torch.testing.assert_close(feats["x_prenorm"], prenorm, atol=1e-5, rtol=1e-5)
    normed = F.layer_norm(prenorm, (32,), model.norm.weight, model.norm.bias, eps=1e-5)
    torch.testing.assert_close(feats["x_norm_clstoken"], normed[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats["x_storage_tokens"], normed[:, 1:5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats["x_norm_patchtokens"], normed[:, 5:], atol=1e-5, rtol=1e-5)
    assert feats["x_norm_patchtokens"].shape == (2, 6, 32)


def test_key_bias_is_masked_and_the_loaded_mask_and_periods_are_used():
    model = tiny()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        base = model(x)
        model.blocks[0].attn.qkv.bias[32:64].add_(5.0)  # key bias: multiplied by 0
        torch.testing.assert_close(model(x), base, atol=1e-6, rtol=0)
        model.blocks[0].attn.qkv.bias_mask[32:64] = 1.0  # a file that keeps the key bias
        assert not torch.allclose(model(x), base, atol=1e-4)
        model.blocks[0].attn.qkv.bias_mask[32:64] = 0.0
        model.rope_embed.periods.mul_(2.0)
        assert not torch.allclose(model(x), base, atol=1e-4)


def test_save_and_reload_strictly_gives_identical_outputs(tmp_path):
    model = tiny(seed=0)
    path = tmp_path / "dinov3_tiny.pth"
    torch.save(model.state_dict(), path)
    fresh = tiny(seed=1)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(fresh(x), model(x))
    load_dinov3_weights(fresh, path)
    torch.testing.assert_close(fresh(x), model(x), atol=0, rtol=0)
    assert not fresh.training and not any(p.requires_grad for p in fresh.parameters())


def test_mismatched_file_names_keys_and_file(tmp_path):
    model = tiny()
    state = dict(model.state_dict())
    del state["rope_embed.periods"]
    state["cls_norm.weight"] = torch.ones(32)  # as an untied-norm model would carry
    state["blocks.1.mlp.fc1.weight"] = torch.zeros(96, 32)  # ffn ratio 3 instead of 4
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_dinov3_weights(model, path)
    message = str(err.value)
    for fragment in ("wrong.pth", "missing keys: rope_embed.periods", "unexpected keys: cls_norm.weight"):
        assert fragment in message
    assert "blocks.1.mlp.fc1.weight (96, 32) vs expected (128, 32)" in message
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match="flat state dict"):
        load_dinov3_weights(model, path)


def test_unavailable_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINED_CKPT_ROOT", str(tmp_path / "ckpts"))
    url = (tmp_path / "offline" / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth").as_uri()  # unreachable
    with pytest.raises(WeightsUnavailableError) as err:
        load_dinov3_weights(tiny(), url)
    message = str(err.value)
    assert str(tmp_path / "ckpts" / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth") in message
    assert ACCESS_URL in message and "gated" in message
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_dinov3("dinov3_vits16", weights=tmp_path / "nope.pth")


def test_unknown_name_and_bad_sizes_raise():
    with pytest.raises(ValueError, match="dinov3_vitl16"):
        build_dinov3("dinov3_vitb16")
    with pytest.raises(ValueError, match="multiple of 16"):
        DinoV3Encoder(DinoV3Spec(32, 1, 2), img_size=40)
    with pytest.raises(ValueError, match="divisible by 4"):
        DinoV3Encoder(DinoV3Spec(36, 1, 2), img_size=32)  # head dim 18
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        tiny()(torch.zeros(1, 3, 48, 48))


def test_frozen_by_default_trainable_on_request():
    frozen = tiny()
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    pixels = torch.randint(0, 256, (1, 2, 30, 40, 3), dtype=torch.uint8)
    out = frozen.encode_frames(pixels)
    assert out.shape == (1, 2, 4, 32) and not out.requires_grad
    trainable = DinoV3Encoder(DinoV3Spec(32, 1, 2), img_size=32, trainable=True)
    trainable.encode_frames(pixels).pow(2).mean().backward()
    grads = {n for n, p in trainable.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {"cls_token", "storage_tokens", "patch_embed.proj.weight", "blocks.0.ls1.gamma"} <= grads
    assert "mask_token" not in grads
