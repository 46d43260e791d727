"""``jepa_wms.hub.load(name)``: a released JEPA-WMs model as a :class:`~jepa_wms.WorldModel`, ready to plan with.

The predictor (and action/proprio encoders) come from the original checkpoint file, the frozen encoder from its own
official weight file; both are fetched into the torch hub cache when the machine is online, or taken from local
files (``checkpoint=``, ``encoder_checkpoint=``). The rebuilt model uses what the original computed with: the
legacy RoPE, planning windows of 2 frames re-positioned from 0, proprio compared as embeddings (carried per patch
by the AdaLN and DINO-WM predictors, as the original's rollouts fed them back).

Widths and depths come from the tensor shapes. The attention head count does not: splitting the same qkv weights
into another number of heads loads without error and predicts something else. It is the release's (16 for every
published model) unless ``num_heads=`` says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, load_state_strict
from ..config import (
    DataConfig,
    EncoderConfig,
    ExperimentConfig,
    ModelConfig,
    PlanConfig,
    PredictorConfig,
    config_from_dict,
)
from ..encoders import FOUNDATION_ENCODERS
from ..saved_model import save_world_model
from ..weights import WeightsUnavailableError, resolve_weights
from ..world_model import WorldModel, build_world_model
from .original import OriginalCheckpoint, read_original_checkpoint
from .specs import DATA_STATS, PUBLISHED_MODELS, PublishedModel

__all__ = ["Preprocessor", "export", "load", "published_config"]


class Preprocessor:
    """The data conventions of a model: pixels → encoder input, raw ↔ normalised actions and proprio.

    A thin view on the :class:`WorldModel`, which holds the statistics (so a model never drifts from them).
    """

    def __init__(self, model: WorldModel) -> None:
        self.model = model

    def transform(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``(..., H, W, 3)`` → normalised ``(..., 3, img, img)`` (centre crop, resize, mean/std)."""
        return self.model.encoder.preprocess(pixels)

    def normalize_actions(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model.normalize_actions(raw)

    def denormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return self.model.denormalize_actions(actions)

    def normalize_proprio(self, proprio: torch.Tensor) -> torch.Tensor:
        return self.model.normalize_proprio(proprio)


def _spec(name: str) -> PublishedModel:
    if name not in PUBLISHED_MODELS:
        raise ValueError(f"unknown published model {name!r}; expected one of {sorted(PUBLISHED_MODELS)}")
    return PUBLISHED_MODELS[name]


def _fetch(spec: PublishedModel, checkpoint: str | os.PathLike | None) -> Path:
    if checkpoint is not None:
        return resolve_weights(checkpoint)
    errors = []
    for url in spec.urls:
        try:
            # Both sources get the release's file name, so a file put there by hand is found whatever the source.
            return resolve_weights(url, filename=spec.file)
        except WeightsUnavailableError as exc:
            errors.append(str(exc))
    raise WeightsUnavailableError(f"{spec.name}: no source reachable; " + " | ".join(errors))


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    ids = {int(k[len(prefix) :].split(".", 1)[0]) for k in state if k.startswith(prefix)}
    if not ids or ids != set(range(len(ids))):
        raise CheckpointError(f"predictor blocks '{prefix}i' are missing or not numbered 0..n-1")
    return len(ids)


def _shape(ck: OriginalCheckpoint, key: str, entry: str = "predictor") -> tuple[int, ...]:
    state = getattr(ck, entry)
    if key not in state:
        raise CheckpointError(f"{ck.path}: '{entry}' lacks the key {key!r}")
    return tuple(state[key].shape)


def _num_heads(spec: PublishedModel, ck: OriginalCheckpoint, num_heads: int | None) -> int:
    """The attention head count: ``num_heads``, else the release's; it must split the file's attention width."""
    heads = spec.num_heads if num_heads is None else num_heads
    key = "transformer.layers.0.0.to_qkv.weight" if spec.predictor == "dino_wm" else "predictor_blocks.0.norm1.weight"
    # DINO-WM's attention width is to_qkv's rows / 3 (heads · dim_head); the others attend over the block width.
    width = _shape(ck, key)[0] // (3 if spec.predictor == "dino_wm" else 1)
    if not isinstance(heads, int) or heads < 1 or width % heads:
        raise CheckpointError(
            f"{ck.path}: the predictor's attention width {width} (from {key!r}) does not split into "
            f"num_heads={heads!r} heads. No tensor records the head count: it is the release's ({spec.num_heads}) "
            "unless jepa_wms.hub.load(num_heads=...) gives the one the file was trained with"
        )
    return heads


def _predictor_config(spec: PublishedModel, ck: OriginalCheckpoint, tokens: int, heads: int) -> PredictorConfig:
    """Widths and depths from the tensors; ``heads`` and the rest from the release's configs."""
    p = ck.predictor
    if spec.predictor == "dino_wm":
        inner = _shape(ck, "transformer.layers.0.0.to_qkv.weight")[0] // 3
        if "weight" not in ck.action_encoder:
            raise CheckpointError(f"{ck.path}: a DINO-WM checkpoint needs its separate 'action_encoder'")
        return PredictorConfig(
            type="dino_wm",
            num_heads=heads,
            depth=_count_blocks(p, "transformer.layers."),
            dim_head=inner // heads,
            ffn_dim=_shape(ck, "transformer.layers.0.1.net.1.weight")[0],
            action_emb_dim=ck.action_encoder["weight"].shape[0],
            num_frames=_shape(ck, "pos_embedding")[1] // tokens,
            context_window=2,
        )
    width = _shape(ck, "predictor_blocks.0.norm1.weight")[0]
    ac = spec.predictor == "vjepa2_ac"
    return PredictorConfig(
        type=spec.predictor,
        num_heads=heads,
        pred_dim=_shape(ck, "predictor_embed.weight")[0],
        depth=_count_blocks(p, "predictor_blocks."),
        mlp_ratio=_shape(ck, "predictor_blocks.0.mlp.fc1.weight")[0] / width,
        rope="legacy",
        context_window=2,
        # The released V-JEPA-2-AC models predict no proprio; normalize_reps is theirs.
        predict_proprio=not ac,
        normalize_reps=ac and spec.normalize_reps,
    )


def published_config(
    name: str,
    ck: OriginalCheckpoint,
    encoder_checkpoint: str | os.PathLike | None = None,
    num_heads: int | None = None,
) -> ExperimentConfig:
    """The :class:`ExperimentConfig` that rebuilds the released model ``name`` around the tensors of ``ck``
    (``num_heads``: the predictor's attention heads, default the release's; see :func:`load`). The keys no release
    describes (collection, training) keep their defaults."""
    spec = _spec(name)
    found = ck.predictor_type
    if found != spec.predictor:
        raise CheckpointError(
            f"{ck.path} holds a {found} predictor, but {name} is a {spec.predictor} model (wrong checkpoint?)"
        )
    foundation = FOUNDATION_ENCODERS[spec.encoder_name]
    grid = spec.img_size // foundation.patch_size
    if spec.predictor == "vjepa2_ac":
        proprio_dim = _shape(ck, "proprio_encoder.weight")[1] if "proprio_encoder.weight" in ck.predictor else 0
        space = "raw"
    else:
        proprio_dim = ck.proprio_encoder["weight"].shape[0] if "weight" in ck.proprio_encoder else 0
        space = "embedding"
    mean, std = spec.pixel_norm
    encoder = EncoderConfig(
        type=spec.encoder_type,
        name=spec.encoder_name,
        weights=str(encoder_checkpoint) if encoder_checkpoint else "official",
        img_size=spec.img_size,
        embed_dim=foundation.embed_dim,
        grid_size=grid,
        pixel_mean=list(mean),
        pixel_std=list(std),
        normalize_output=spec.normalize_reps,
    )
    predictor = _predictor_config(spec, ck, grid * grid, _num_heads(spec, ck, num_heads))
    cfg = ExperimentConfig(
        env=spec.env,
        data=DataConfig(frameskip=spec.frameskip),
        model=ModelConfig(encoder=encoder, predictor=predictor, proprio_emb_dim=proprio_dim, proprio_space=space),
        plan=PlanConfig(**{"action_clip": 0.0, **spec.plan}),
    )
    # Checked like any config (choices, ranges) and completed as one (an unset position-table length).
    return config_from_dict(cfg.to_dict())


def _stats(spec: PublishedModel, stats: dict | None, dataset: str | os.PathLike | None) -> dict[str, Any]:
    if stats is not None:
        return stats
    if dataset is not None:
        from ..datasets import TrajectoryStore

        store = TrajectoryStore(dataset)
        a, p = store.action_stats, store.proprio_stats
        return {"action_mean": a.mean, "action_std": a.std, "proprio_mean": p.mean, "proprio_std": p.std}
    if spec.stats is None:
        raise ValueError(
            f"{spec.name}: the action/proprio normalisation of its training data was not published; pass "
            "dataset=<that dataset converted with `jepa-wms convert`> or stats={action_mean, action_std, "
            "proprio_mean, proprio_std}"
        )
    return DATA_STATS[spec.stats]


def _state_dict(model: WorldModel, ck: OriginalCheckpoint, spec: PublishedModel) -> dict[str, torch.Tensor]:
    """Our full state dict: the model's own encoder and buffers, the checkpoint's predictor and embeddings."""
    stats = ("action_mean", "action_std", "proprio_mean", "proprio_std")
    state = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.") or k in stats}
    state.update({f"predictor.{k}": v for k, v in ck.predictor.items()})
    if spec.predictor == "dino_wm":
        state.update({f"predictor.action_encoder.{k}": v for k, v in ck.action_encoder.items()})
    if model.proprio_encoder is not None:
        state.update({f"proprio_encoder.proj.{k}": v for k, v in ck.proprio_encoder.items()})
    return state


def load(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    encoder_checkpoint: str | os.PathLike | None = None,
    *,
    stats: dict | None = None,
    dataset: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    num_heads: int | None = None,
) -> tuple[WorldModel, Preprocessor]:
    """The released model ``name`` (see ``PUBLISHED_MODELS``) as ``(model, preprocessor)``, in eval mode.

    ``checkpoint``: the original ``.pth.tar`` (local path or URL; default: the release's, via the hub cache).
    ``encoder_checkpoint``: the frozen encoder's weight file (default: its official URL).
    ``stats`` / ``dataset``: action/proprio normalisation where the release has none (Wall, Metaworld).
    ``num_heads``: the predictor's attention heads (default: the release's, 16). No tensor records them, so a
    checkpoint trained with another count loads without error and mispredicts unless it is given here; a count
    that does not split the attention width is refused.
    Raises CheckpointError for a corrupt file, one holding code, another model's checkpoint, or such a count.
    """
    model, _ = _build(name, checkpoint, encoder_checkpoint, stats, dataset, num_heads)
    model = model.to(device).eval()
    return model, Preprocessor(model)


def _build(name, checkpoint, encoder_checkpoint, stats, dataset, num_heads) -> tuple[WorldModel, ExperimentConfig]:
    spec = _spec(name)
    path = _fetch(spec, checkpoint)
    ck = read_original_checkpoint(path)
    cfg = published_config(name, ck, encoder_checkpoint, num_heads)
    st = _stats(spec, stats, dataset)
    proprio_dim = len(st["proprio_mean"])
    model = build_world_model(
        cfg.model,
        raw_action_dim=spec.raw_action_dim,
        proprio_dim=proprio_dim,
        frameskip=spec.frameskip,
        **{k: torch.as_tensor(v, dtype=torch.float32) for k, v in st.items()},
    )
    load_state_strict(model, _state_dict(model, ck, spec), path)
    return model, cfg


def export(
    name: str,
    out: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    encoder_checkpoint: str | os.PathLike | None = None,
    *,
    stats: dict | None = None,
    dataset: str | os.PathLike | None = None,
    num_heads: int | None = None,
) -> Path:
    """Write the released model as a jepa-wms checkpoint (encoder included), so ``jepa-wms eval`` plans with it.

    Arguments as :func:`load`; the head count is written into the checkpoint's config."""
    model, cfg = _build(name, checkpoint, encoder_checkpoint, stats, dataset, num_heads)
    out = Path(out)
    save_world_model(
        out,
        model,
        cfg,
        raw_action_dim=model.action_mean.numel(),
        proprio_dim=model.proprio_mean.numel(),
        # Released Wall models saw the original's 65-px frames: plan in WallConfig(render="reference").
        env_kwargs={"render": "reference", "img_size": 65} if cfg.env == "wall" else {},
        source={"published_model": name},
    )
    return out
