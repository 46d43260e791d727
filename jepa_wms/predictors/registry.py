"""``build_predictor(cfg, ...)``: the latent predictor a config names (``model.predictor.type``)."""

from __future__ import annotations

import typing

from jepa_wms.config import PredictorConfig, PredictorType
from jepa_wms.predictors.adaln_vit import AdaLNPredictor
from jepa_wms.predictors.base import LatentPredictor
from jepa_wms.predictors.dino_wm_vit import DinoWMPredictor
from jepa_wms.predictors.vjepa2_ac import VJepa2ACPredictor

__all__ = ["PREDICTOR_TYPES", "build_predictor"]

PREDICTOR_TYPES: tuple[str, ...] = typing.get_args(PredictorType)


def build_predictor(
    cfg: PredictorConfig,
    embed_dim: int,
    grid: tuple[int, int],
    action_dim: int,
    proprio_emb_dim: int,
    num_frames: int = 0,
) -> LatentPredictor:
    """The predictor ``cfg`` names, for encoder width ``embed_dim`` and token grid ``grid``.

    ``num_frames`` sizes the DINO-WM position table when ``cfg.num_frames`` is 0 (it is the training window).
    """
    # Every predictor takes these; the rest depend on the architecture.
    common = dict(
        embed_dim=embed_dim,
        action_dim=action_dim,
        proprio_emb_dim=proprio_emb_dim,
        grid_size=grid,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        context_window=cfg.context_window,
    )
    if cfg.type == "adaln":
        return AdaLNPredictor(
            **common,
            pred_dim=cfg.pred_dim,
            mlp_ratio=cfg.mlp_ratio,
            init_scale_adaln=cfg.init_scale_adaln,
            rope=cfg.rope,
        )
    if cfg.type == "dino_wm":
        frames = cfg.num_frames or num_frames
        if frames < 1:
            raise ValueError(
                "model.predictor.num_frames must be >= 1 for the dino_wm predictor (its position table length); "
                "set it, or data.num_frames when the config is loaded with load_config"
            )
        width = embed_dim + proprio_emb_dim + cfg.action_emb_dim
        return DinoWMPredictor(
            **common,
            num_frames=frames,
            action_emb_dim=cfg.action_emb_dim,
            dim_head=cfg.dim_head,
            ffn_dim=cfg.ffn_dim or int(cfg.mlp_ratio * width),
            dropout=cfg.dropout,
        )
    if cfg.type == "vjepa2_ac":
        return VJepa2ACPredictor(
            **common,
            pred_dim=cfg.pred_dim,
            mlp_ratio=cfg.mlp_ratio,
            predict_proprio=cfg.predict_proprio,
            normalize_reps=cfg.normalize_reps,
            rope=cfg.rope,
        )
    raise ValueError(f"unknown model.predictor.type {cfg.type!r}; expected one of {PREDICTOR_TYPES}")
