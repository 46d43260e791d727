"""Image encoders (uint8 frames -> patch tokens) and anti-collapse regularisers for trained ones."""

from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.conv import ConvEncoder
from jepa_wms.encoders.dinov2 import DINOV2_MODELS, DinoV2Encoder, build_dinov2, load_dinov2_weights
from jepa_wms.encoders.registry import build_encoder
from jepa_wms.encoders.regularizers import sigreg, vicreg

__all__ = [
    "DINOV2_MODELS",
    "ConvEncoder",
    "DinoV2Encoder",
    "Encoder",
    "build_dinov2",
    "build_encoder",
    "load_dinov2_weights",
    "sigreg",
    "vicreg",
]
