"""Latent predictors: (tokens, actions, proprio) of frames <= t -> tokens of frame t+1.

``adaln`` (JEPA-WM, action-modulated blocks), ``dino_wm`` (DINO-WM, channel-concatenated conditioning) and
``vjepa2_ac`` (V-JEPA-2-AC, conditioning tokens) share the :class:`LatentPredictor` contract.
"""

from jepa_wms.predictors.adaln_vit import AdaLNBlock, AdaLNPredictor
from jepa_wms.predictors.base import ROPE_MODES, LatentPredictor
from jepa_wms.predictors.caches import PredictorCache, WindowCache
from jepa_wms.predictors.dino_wm_vit import DinoWMPredictor
from jepa_wms.predictors.embeddings import ProprioDecoder, ProprioEncoder
from jepa_wms.predictors.registry import PREDICTOR_TYPES, build_predictor
from jepa_wms.predictors.vjepa2_ac import VJepa2ACPredictor

__all__ = [
    "PREDICTOR_TYPES",
    "ROPE_MODES",
    "AdaLNBlock",
    "AdaLNPredictor",
    "DinoWMPredictor",
    "LatentPredictor",
    "PredictorCache",
    "ProprioDecoder",
    "ProprioEncoder",
    "VJepa2ACPredictor",
    "WindowCache",
    "build_predictor",
]
