"""Plain-torch ViT building blocks shared by predictors and encoders (official parameter names)."""

from jepa_wms.layers.attention import Attention, KVCache, head_padding, padded_head_dim, set_head_padding
from jepa_wms.layers.layer_scale import LayerScale
from jepa_wms.layers.masks import frame_causal_mask
from jepa_wms.layers.mlp import Mlp
from jepa_wms.layers.patch_embed import PatchEmbed
from jepa_wms.layers.rope import RotaryEmbedding3D, grid_positions

__all__ = [
    "Attention",
    "KVCache",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "RotaryEmbedding3D",
    "frame_causal_mask",
    "grid_positions",
    "head_padding",
    "padded_head_dim",
    "set_head_padding",
]
