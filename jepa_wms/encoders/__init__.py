"""Image encoders (uint8 frames -> patch tokens), a state encoder (env state -> one token of normalised features),
anti-collapse regularisers and a pixel decoder for trained ones."""

from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.conv import ConvEncoder
from jepa_wms.encoders.dinov2 import DINOV2_MODELS, DinoV2Encoder, build_dinov2, load_dinov2_weights
from jepa_wms.encoders.dinov3 import DINOV3_MODELS, DinoV3Encoder, build_dinov3, load_dinov3_weights
from jepa_wms.encoders.keypoints import KeypointDecoder, KeypointEncoder
from jepa_wms.encoders.pixel_decoder import PixelDecoder
from jepa_wms.encoders.registry import FOUNDATION_ENCODERS, build_checkpoint_encoder, build_encoder
from jepa_wms.encoders.regularizers import sigreg, vicreg
from jepa_wms.encoders.state import STATE_FEATURES, StateEncoder, state_features
from jepa_wms.encoders.vjepa import VJEPA_MODELS, VJepaEncoder, build_vjepa, load_vjepa_weights

__all__ = [
    "DINOV2_MODELS",
    "DINOV3_MODELS",
    "FOUNDATION_ENCODERS",
    "ConvEncoder",
    "DinoV2Encoder",
    "DinoV3Encoder",
    "Encoder",
    "KeypointDecoder",
    "KeypointEncoder",
    "PixelDecoder",
    "STATE_FEATURES",
    "StateEncoder",
    "VJEPA_MODELS",
    "VJepaEncoder",
    "build_checkpoint_encoder",
    "build_dinov2",
    "build_dinov3",
    "build_encoder",
    "build_vjepa",
    "load_dinov2_weights",
    "load_dinov3_weights",
    "load_vjepa_weights",
    "sigreg",
    "state_features",
    "vicreg",
]
