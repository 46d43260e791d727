import math

import pytest
import torch
import torch.nn.functional as F

from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.vjepa import (
    VJEPA_MODELS,
    VJepaEncoder,
    VJepaSpec,
    build_vjepa,
    load_vjepa_weights,
    sincos_pos_embed_3d,
    strip_key_prefixes,
)

# From facebookresearch/jepa and facebookresearch/vjepa2 (vit_large, vit_giant_xformers), independently of the
# module: (D, depth, heads, MLP hidden, sin-cos table tokens or None for RoPE).
SIZES = {
    "vjepa_vitl16": (1024, 24, 16, 4096, 8 * 14 * 14),
    "vjepa2_vitl16": (1024, 24, 16, 4096, None),
    "vjepa2_vitg16": (1408, 40, 22, 6144, None),
}
# Published sizes (V-JEPA 2 model card: ViT-L 300M, ViT-g 1B; V-JEPA ViT-L/16: 305.5M with its table) and exact counts.
PARAMS = {
    "vjepa_vitl16": (305.5e6, 305_490_944),
    "vjepa2_vitl16": (300e6, 303_885_312),
    "vjepa2_vitg16": (1.0e9, 1_012_173_952),
}


def expected_shapes(dim: int, depth: int, hidden: int, table: int | None) -> dict[str, tuple[int, ...]]:
    shapes = {
        "patch_embed.proj.weight": (dim, 3, 2, 16, 16),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    if table is not None:
        shapes["pos_embed"] = (1, table, dim)
    for i in range(depth):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            shapes[b + norm + ".weight"] = shapes[b + norm + ".bias"] = (dim,)
        shapes[b + "attn.qkv.weight"], shapes[b + "attn.qkv.bias"] = (3 * dim, dim), (3 * dim,)
        shapes[b + "attn.proj.weight"], shapes[b + "attn.proj.bias"] = (dim, dim), (dim,)
        shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (hidden, dim), (hidden,)
        shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (dim, hidden), (dim,)
    return shapes


def tiny(pos: str = "rope", seed: int = 0, img_size: int = 32, **kw) -> VJepaEncoder:
    torch.manual_seed(seed)
    model = VJepaEncoder(VJepaSpec(48, 2, 2, pos=pos, **kw), img_size=img_size)  # head dim 24: 8 rotated per axis
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.add_(0.05 * torch.randn_like(p))  # break the init symmetries (ones/zeros) a reference could hide
    return model


def test_presets_are_the_three_released_encoders():
    assert set(VJEPA_MODELS) == set(SIZES)
    assert VJEPA_MODELS["vjepa_vitl16"].pos == "sincos" and VJEPA_MODELS["vjepa2_vitg16"].pos == "rope"


@pytest.mark.parametrize("name", sorted(SIZES))
def test_state_dict_keys_shapes_and_param_count_match_official(name):
    dim, depth, heads, hidden, table = SIZES[name]
    with torch.device("meta"):
        model = build_vjepa(name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_shapes(dim, depth, hidden, table)
    assert model.blocks[0].attn.num_heads == heads and model.embed_dim == dim
    published, exact = PARAMS[name]
    count = sum(p.numel() for p in model.parameters())
    assert count == exact and count == pytest.approx(published, rel=0.015)


@pytest.mark.parametrize(("name", "img", "grid"), [("vjepa2_vitg16", 256, 16), ("vjepa_vitl16", 224, 14)])
def test_one_token_grid_per_frame(name, img, grid):
    with torch.device("meta"):
        model = build_vjepa(name, img_size=img)
        tokens = model(torch.empty(2, 3, img, img))
    assert isinstance(model, Encoder) and model.grid_size == (grid, grid) and model.img_size == img
    assert tokens.shape == (2, grid * grid, SIZES[name][0])
    assert model.mean == (0.485, 0.456, 0.406) and model.std == (0.229, 0.224, 0.225)


def test_default_img_size_is_the_pretraining_resolution():
    with torch.device("meta"):
        assert build_vjepa("vjepa2_vitl16").grid_size == (16, 16)
        assert build_vjepa("vjepa_vitl16").grid_size == (14, 14)


def reference_table(dim: int, frames: int, grid: int, uniform_power: bool) -> torch.Tensor:
    """The V-JEPA sin-cos table entry by entry with math.sin/cos."""
    widths = [2 * math.ceil(dim / 6)] * 3 if uniform_power else [dim // 2, dim // 4, dim // 4]
    rows = []
    for t in range(frames):
        for r in range(grid):
            for c in range(grid):
                row = []
                for p, width in zip((t, r, c), widths, strict=True):
                    freqs = [10000 ** (-i / (width / 2)) for i in range(width // 2)]
                    row += [math.sin(p * f) for f in freqs] + [math.cos(p * f) for f in freqs]
                rows.append(row[:dim])
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize(("dim", "uniform_power"), [(20, True), (16, True), (16, False)])
def test_sincos_table_matches_an_independent_formula(dim, uniform_power):
    # dim 20 with uniform power: 3 × 8 = 24 channels, so the column part loses its last 4 (its cosines).
    got = sincos_pos_embed_3d(dim, frames=3, grid=2, uniform_power=uniform_power)
    torch.testing.assert_close(got, reference_table(dim, 3, 2, uniform_power), atol=1e-6, rtol=0)


def test_released_vitl16_table_layout():
    table = sincos_pos_embed_3d(1024, frames=8, grid=14)
    assert table.shape == (1568, 1024)
    # Token (t=1, r=0, c=0): the time part is [sin(1·ω), cos(1·ω)] with 171 frequencies, ω_0 = 1.
    assert table[196, 0].item() == pytest.approx(math.sin(1.0)) and table[196, 171].item() == pytest.approx(math.cos(1))
    # Row and col are 0 (sin 0 = 0, cos 0 = 1): 171 row cosines, and 169 col cosines left after the cut at 1024.
    assert table[196, 342:].sum().item() == pytest.approx(171 + 169)


def test_one_tubelet_samples_between_the_middle_time_slices():
    # 16 pretraining frames = 8 tubelets; trilinear with scale 1/8 reads time 3.5, i.e. the mean of slices 3 and 4.
    model = tiny("sincos", img_size=32, pos_frames=16, pos_grid=2)
    table = model.pos_embed.reshape(8, 4, 48)
    torch.testing.assert_close(model.pos_embed_for_grid(2, 2)[0], (table[3] + table[4]) / 2)
    assert model.pos_embed_for_grid(2, 2) is model.pos_embed_for_grid(2, 2)  # cached
    upsampled = model.pos_embed_for_grid(3, 3)  # 224 -> 256 style: spatial interpolation too
    assert upsampled.shape == (1, 9, 48)
    same_grid = tiny("sincos", img_size=32, pos_frames=2, pos_grid=2)  # a one-tubelet table is used as stored
    assert same_grid.pos_embed_for_grid(2, 2) is same_grid.pos_embed


def legacy_rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The original rotate_queries_or_keys: adjacent pairs, but sin/cos tiled (not interleaved) over the chunk."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float32) / (d / 2.0))
    freq = pos.float()[:, None] * omega
    sin, cos = freq.sin().repeat(1, 2), freq.cos().repeat(1, 2)
    pairs = x.unflatten(-1, (-1, 2))
    partner = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + partner * sin


def reference_tokens(model: VJepaEncoder, x: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
    """Hand-written V-JEPA trunk for one frame duplicated into a tubelet (RoPE, or a given position table)."""
    dim, heads = model.embed_dim, model.spec.num_heads
    hd, rows, cols = dim // heads, x.shape[2] // 16, x.shape[3] // 16
    clip = torch.stack((x, x), dim=2)  # (B, 3, 2, H, W)
    w, b = model.patch_embed.proj.weight, model.patch_embed.proj.bias
    tokens = F.conv3d(clip, w, b, stride=(2, 16, 16)).flatten(2).mT
    if table is not None:
        tokens = tokens + table
    idx = torch.arange(rows * cols)
    axes = (torch.zeros_like(idx), idx // cols, idx % cols)
    chunk = 2 * ((hd // 3) // 2)
    for blk in model.blocks:
        h = F.layer_norm(tokens, (dim,), blk.norm1.weight, blk.norm1.bias, eps=1e-6)
        q, k, v = F.linear(h, blk.attn.qkv.weight, blk.attn.qkv.bias).chunk(3, -1)
        q, k, v = (t.unflatten(-1, (heads, hd)).transpose(1, 2) for t in (q, k, v))
        if table is None:
            parts_q, parts_k = [], []
            for a, p in enumerate(axes):
                s = slice(a * chunk, (a + 1) * chunk)
                parts_q.append(legacy_rotate(q[..., s], p))
                parts_k.append(legacy_rotate(k[..., s], p))
            q = torch.cat((*parts_q, q[..., 3 * chunk :]), -1)
            k = torch.cat((*parts_k, k[..., 3 * chunk :]), -1)
        att = torch.softmax(q @ k.mT / hd**0.5, -1) @ v
        tokens = tokens + blk.attn.proj(att.transpose(1, 2).flatten(2))
        h = F.layer_norm(tokens, (dim,), blk.norm2.weight, blk.norm2.bias, eps=1e-6)
        tokens = tokens + blk.mlp.fc2(F.gelu(blk.mlp.fc1(h)))
    return F.layer_norm(tokens, (dim,), model.norm.weight, model.norm.bias, eps=1e-6)


def test_vjepa2_forward_matches_the_original_legacy_rope_trunk():
    model = tiny("rope", img_size=48)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        got, want = model(x), reference_tokens(model, x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got.shape == (2, 9, 48)


def test_vjepa_forward_adds_the_interpolated_sincos_table():
    model = tiny("sincos", img_size=32, pos_frames=16, pos_grid=2)
    x = torch.randn(2, 3, 32, 32)
    table = model.pos_embed.reshape(8, 4, 48)
    with torch.no_grad():
        got, want = model(x), reference_tokens(model, x, table=(table[3] + table[4]) / 2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_reload_from_an_official_style_checkpoint_gives_identical_outputs(tmp_path):
    target, online = tiny("rope", seed=0), tiny("rope", seed=1)
    path = tmp_path / "vitl.pt"
    checkpoint = {
        "encoder": {f"module.backbone.{k}": v for k, v in online.state_dict().items()},
        "target_encoder": {f"module.backbone.{k}": v for k, v in target.state_dict().items()},
        "predictor": {"module.backbone.predictor_embed.weight": torch.zeros(2, 2)},
        "epoch": 3,
    }
    torch.save(checkpoint, path)
    x = torch.randn(2, 3, 32, 32)
    fresh = load_vjepa_weights(tiny("rope", seed=2), path)  # target_encoder by default, as the original
    torch.testing.assert_close(fresh(x), target(x), atol=0, rtol=0)
    assert not torch.allclose(online(x), target(x))
    other = load_vjepa_weights(tiny("rope", seed=2), path, checkpoint_key="encoder")
    torch.testing.assert_close(other(x), online(x), atol=0, rtol=0)
    assert not fresh.training and not any(p.requires_grad for p in fresh.parameters())


def test_sincos_model_reloads_its_table_and_flat_files_load_too(tmp_path):
    model = tiny("sincos", seed=0, pos_frames=4, pos_grid=2)
    with torch.no_grad():
        model.pos_embed.add_(1.0)  # a table that differs from the freshly built one must come from the file
    path = tmp_path / "flat.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    fresh = load_vjepa_weights(tiny("sincos", seed=1, pos_frames=4, pos_grid=2), path)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(fresh(x), model(x), atol=0, rtol=0)


def test_prefixes_are_stripped_only_at_the_start():
    assert strip_key_prefixes("module.backbone.blocks.0.attn.qkv.weight") == "blocks.0.attn.qkv.weight"
    assert strip_key_prefixes("backbone.norm.bias") == "norm.bias"
    # str.replace("module.", "") would have turned "submodule." into "sub".
    assert strip_key_prefixes("module.blocks.0.submodule.weight") == "blocks.0.submodule.weight"


def test_wrong_files_are_named_with_their_keys(tmp_path):
    model = tiny("rope")
    state = {f"module.backbone.{k}": v for k, v in model.state_dict().items()}
    del state["module.backbone.norm.bias"]
    state["module.backbone.blocks.1.mlp.fc1.weight"] = torch.zeros(8, 48)
    state["module.backbone.pos_embed"] = torch.zeros(1, 4, 48)  # tolerated: RoPE models ignore a stored table
    state["module.backbone.cls_token"] = torch.zeros(1, 1, 48)
    path = tmp_path / "wrong.pt"
    torch.save({"target_encoder": state}, path)
    with pytest.raises(ValueError) as err:
        load_vjepa_weights(model, path)
    message = str(err.value)
    for fragment in ("wrong.pt [target_encoder]", "missing keys: norm.bias", "unexpected keys: cls_token"):
        assert fragment in message
    assert "blocks.1.mlp.fc1.weight (8, 48) vs expected (192, 48)" in message
    assert "pos_embed" not in message
    torch.save({"model": state, "epoch": 1}, path)
    with pytest.raises(ValueError, match=r"no 'target_encoder' entry .*\['epoch', 'model'\]"):
        load_vjepa_weights(model, path)
    sincos = tiny("sincos", pos_frames=4, pos_grid=2)
    good = dict(sincos.state_dict())
    good["pos_embed"] = torch.zeros(1, 16, 48)  # a table for another pretraining geometry
    torch.save({"target_encoder": good}, path)
    with pytest.raises(ValueError, match=r"pos_embed \(1, 16, 48\) vs expected \(1, 8, 48\)"):
        load_vjepa_weights(sincos, path)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_vjepa("vjepa2_vitl16", weights=tmp_path / "nope.pt")


class _Opaque:  # any non-tensor object: refused by torch.load(weights_only=True)
    pass


def test_files_that_need_full_unpickling_are_refused(tmp_path):
    model = tiny("rope")
    path = tmp_path / "pickled.pt"
    torch.save({"target_encoder": model.state_dict(), "extra": _Opaque()}, path)
    with pytest.raises(ValueError, match="pickled.pt was refused"):
        load_vjepa_weights(model, path)


def test_bad_names_and_sizes_raise():
    with pytest.raises(ValueError, match="vjepa2_vitg16"):
        build_vjepa("vjepa2_vith16")
    with pytest.raises(ValueError, match="multiple of 16"):
        VJepaEncoder(VJepaSpec(48, 1, 2), img_size=40)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        tiny()(torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match="RoPE"):
        tiny("rope").pos_embed_for_grid(2, 2)


def test_frozen_by_default_and_the_table_never_trains():
    frozen = tiny("sincos", pos_frames=4, pos_grid=2)
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    pixels = torch.randint(0, 256, (1, 2, 30, 40, 3), dtype=torch.uint8)
    out = frozen.encode_frames(pixels)
    assert out.shape == (1, 2, 4, 48) and not out.requires_grad
    trainable = VJepaEncoder(VJepaSpec(48, 1, 2, pos="sincos", pos_frames=4, pos_grid=2), img_size=32, trainable=True)
    assert not trainable.pos_embed.requires_grad
    trainable.encode_frames(pixels).pow(2).mean().backward()
    grads = {n for n, p in trainable.named_parameters() if p.grad is not None}
    assert {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight"} <= grads and "pos_embed" not in grads
