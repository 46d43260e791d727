"""Latent predictors: (tokens, actions, proprio) of frames <= t -> tokens of frame t+1."""

from jepa_wms.predictors.adaln_vit import AdaLNBlock, AdaLNPredictor, PredictorCache
from jepa_wms.predictors.embeddings import ProprioDecoder, ProprioEncoder

__all__ = ["AdaLNBlock", "AdaLNPredictor", "PredictorCache", "ProprioDecoder", "ProprioEncoder"]
