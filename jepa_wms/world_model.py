"""The world model: encoder + action-conditioned predictor + proprio embedding, with the data normalisation it was
trained on. This is the `Dynamics` the planners drive: ``encode`` observations once, ``rollout`` candidate actions.

Proprio is z-normalised, embedded by a linear ``ProprioEncoder`` and given to the predictor (as channels of every
visual token or as a token of its own, depending on ``model.predictor.type``). The predicted proprio embedding is
decoded back to normalised proprio (``ProprioDecoder``), and rollouts re-embed that decoded value: the proprio loss
and the planning cost then live in normalised proprio units, a space that cannot collapse (the original compared
embeddings of a trainable encoder, which can shrink to zero).

``proprio_space="embedding"`` computes as the original did (released JEPA-WM and DINO-WM models load into it):
proprio stays an embedding, and with a predictor that puts it on every patch token (AdaLN, DINO-WM) it is carried
per patch, ``(B, T, N, E)``: the observed embedding tiled over the patches, each patch's predicted proprio channels
fed back as they are, and losses and planning costs averaged over patches and channels, as the original's were.

The encoder reads pixels, or for ``model.encoder.type: state`` the env's exact state (``observation_key``): the
"visual" latent is then one token of normalised state features, and everything downstream is unchanged.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import ModelConfig, ProprioSpace
from .encoders import Encoder, PixelDecoder, build_encoder
from .predictors import LatentPredictor, ProprioDecoder, ProprioEncoder, build_predictor

PROPRIO_SPACES: tuple[str, ...] = typing.get_args(ProprioSpace)


@dataclass
class LatentState:
    """Latents of a sequence of frames: ``visual`` (B, T, N, D) and ``proprio`` or None.

    ``proprio`` is in the model's ``proprio_space``: normalised (B, T, P) ("decoded", "raw"), or the embedding
    (B, T, E) ("embedding"), per patch (B, T, N, E) when the predictor carries proprio on every patch token.
    """

    visual: Tensor
    proprio: Tensor | None


def _repeat_rows(x: Tensor, repeats: int) -> Tensor:
    """Row b of ``x`` repeated ``repeats`` times (rows b·repeats … (b+1)·repeats − 1); a broadcast view for one row."""
    return x.expand(repeats, *x.shape[1:]) if x.shape[0] == 1 else x.repeat_interleave(repeats, dim=0)


def denormalize_actions(actions: Tensor, mean: Tensor, std: Tensor, frameskip: int) -> Tensor:
    """Model actions (..., frameskip·A) normalised with raw per-step ``mean``/``std`` (A,) → raw (..., frameskip, A)."""
    raw = actions.unflatten(-1, (frameskip, -1))
    return raw * std.to(raw.device) + mean.to(raw.device)


class WorldModel(nn.Module):
    def __init__(
        self,
        encoder: Encoder,
        predictor: LatentPredictor,
        proprio_encoder: ProprioEncoder | None,
        proprio_decoder: ProprioDecoder | None,
        action_mean: Tensor,
        action_std: Tensor,
        proprio_mean: Tensor,
        proprio_std: Tensor,
        frameskip: int,
        proprio_space: str = "decoded",
        pixel_decoder: PixelDecoder | None = None,
    ) -> None:
        super().__init__()
        if proprio_space not in PROPRIO_SPACES:
            raise ValueError(f"WorldModel: proprio_space must be one of {PROPRIO_SPACES}, got {proprio_space!r}")
        if proprio_space == "raw" and proprio_encoder is not None:
            raise ValueError("WorldModel: proprio_space 'raw' feeds proprio to the predictor as is, without an encoder")
        self.proprio_space = proprio_space
        self.encoder = encoder
        self.predictor = predictor
        self.proprio_encoder = proprio_encoder
        self.proprio_decoder = proprio_decoder
        # Only the reconstruction loss uses it; planning never decodes pixels.
        self.pixel_decoder = pixel_decoder
        self.frameskip = frameskip
        # Raw per-env-step action stats (A,); a model action is `frameskip` of them concatenated.
        self.register_buffer("action_mean", action_mean.float().clone())
        self.register_buffer("action_std", action_std.float().clone())
        self.register_buffer("proprio_mean", proprio_mean.float().clone())
        self.register_buffer("proprio_std", proprio_std.float().clone())

    @property
    def action_dim(self) -> int:
        """Model action dim: frameskip × raw action dim."""
        return self.frameskip * self.action_mean.numel()

    @property
    def observation_key(self) -> str:
        """The observation array the encoder reads: ``"pixels"``, or ``"state"`` for a state encoder."""
        return self.encoder.observation_key

    @property
    def uses_proprio(self) -> bool:
        return self.proprio_encoder is not None or (self.proprio_space == "raw" and self.predictor.proprio_emb_dim > 0)

    # ----- normalisation -------------------------------------------------------------------------------------
    def normalize_proprio(self, proprio: Tensor) -> Tensor:
        return (proprio - self.proprio_mean) / self.proprio_std

    def denormalize_actions(self, actions: Tensor) -> Tensor:
        """Model actions (..., frameskip·A) normalised → raw env actions (..., frameskip, A)."""
        return denormalize_actions(actions, self.action_mean, self.action_std, self.frameskip)

    def normalize_actions(self, raw: Tensor) -> Tensor:
        """Raw env actions (..., frameskip, A) → model actions (..., frameskip·A)."""
        return ((raw - self.action_mean) / self.action_std).flatten(-2)

    # ----- encoding and prediction ---------------------------------------------------------------------------
    def encode(
        self, pixels: Tensor | None, proprio: Tensor | None = None, *, state: Tensor | None = None
    ) -> LatentState:
        """``pixels`` uint8 (B, T, H, W, 3), ``proprio`` raw (B, T, P) → latents (proprio in ``proprio_space``).

        A state model (``observation_key == "state"``) reads ``state``, raw env states (B, T, S), instead of pixels.
        """
        obs = state if self.encoder.observation_key == "state" else pixels
        if obs is None:
            raise ValueError(
                f"WorldModel.encode: this model's encoder ({type(self.encoder).__name__}) reads "
                f"'{self.encoder.observation_key}', which was not given"
            )
        visual = self.encoder.encode_frames(obs)
        prop = self.normalize_proprio(proprio.float()) if proprio is not None and self.uses_proprio else None
        return LatentState(visual, self.proprio_latent(prop))

    def proprio_latent(self, proprio: Tensor | None) -> Tensor | None:
        """Normalised proprio (B, T, P) → the proprio of a :class:`LatentState` (in the "embedding" space its
        embedding, tiled over the patches for a ``proprio_per_patch`` predictor)."""
        if proprio is None or self.proprio_space != "embedding":
            return proprio
        return self._embed_proprio(self.proprio_encoder(proprio))

    def _embed_proprio(self, proprio: Tensor | None) -> Tensor | None:
        """LatentState proprio → predictor input."""
        if proprio is None or self.proprio_space == "raw":
            return proprio
        if self.proprio_space == "decoded":
            return self.proprio_encoder(proprio)
        if self.predictor.proprio_per_patch and proprio.dim() == 3:
            # A per-frame embedding is the same on every patch; per patch, each patch's prediction is fed back.
            return proprio.unsqueeze(2).expand(-1, -1, self.predictor.num_tokens, -1)
        return proprio

    def _decode_proprio(self, emb: Tensor | None) -> Tensor | None:
        """Predictor output → LatentState proprio."""
        if emb is None or self.proprio_space != "decoded":
            return emb
        return self.proprio_decoder(emb) if self.proprio_decoder is not None else None

    def predict(self, state: LatentState, actions: Tensor) -> LatentState:
        """Teacher forcing: frames 0..T−1 and actions (B, T, A_model) → predictions of frames 1..T (frame-causal)."""
        z, p_emb = self.predictor(state.visual, actions, self._embed_proprio(state.proprio))
        return LatentState(z, self._decode_proprio(p_emb))

    def rollout(
        self,
        context: LatentState,
        actions: Tensor,
        context_actions: Tensor | None = None,
        stop_grad: bool = False,
        kv_window: int = 0,
    ) -> LatentState:
        """Autoregressive prediction from ``context`` (B, C, ...) frames.

        ``context_actions`` (B, C−1, A_model) are the actions between context frames; ``actions`` (B, H, A_model) start
        at the last context frame. Returns the H predicted frames (B, H, ...). Predictions are fed back through the
        predictor's cache (key/value: each step only computes the new frame's tokens; or a sliding window of frames);
        ``stop_grad`` detaches what is fed back (truncated backprop: each step's gradient then reaches only its own
        predictor call). A predictor that does not predict proprio keeps the last context proprio as its input and
        the returned ``proprio`` is None. In the "embedding" space with a ``proprio_per_patch`` predictor the
        proprio fed back and returned is per patch (B, H, N, E), as the original unrolled. ``kv_window`` W >= 1 keeps
        only the last W frames in the key/value cache (sliding-window attention, bounded memory; see
        ``LatentPredictor.new_cache``); 0 keeps them all.

        Shared context (planning): ``actions`` may hold S candidates per context row, (B·S, H, A_model), row
        b·S + s rolled out from context row b. The C − 1 earlier context frames are then run once per context row
        and their cache shared by its S candidates, instead of once per candidate; the predictions equal those
        from a context repeated S times (``repeat_interleave``), up to the float rounding of a smaller batch.
        """
        num_ctx, batch = context.visual.shape[1], context.visual.shape[0]
        if num_ctx > 1 and (context_actions is None or context_actions.shape[1] != num_ctx - 1):
            raise ValueError(f"rollout: {num_ctx} context frames need context_actions of shape (B, {num_ctx - 1}, A)")
        rows = actions.shape[0]
        if rows % batch:
            raise ValueError(
                f"rollout: actions {tuple(actions.shape)} must have B·S rows, S candidates per context row (B={batch})"
            )
        repeats = rows // batch
        cache = self.predictor.new_cache(batch, kv_window)
        p_emb_ctx = self._embed_proprio(context.proprio)
        if num_ctx > 1:
            prefix = None if p_emb_ctx is None else p_emb_ctx[:, :-1]
            self.predictor.prefill(context.visual[:, :-1], context_actions, prefix, cache)
        z = context.visual[:, -1]
        p_emb = None if p_emb_ctx is None else p_emb_ctx[:, -1]
        if repeats > 1:
            cache = cache.expand(rows) if batch == 1 else cache.repeat_interleave(repeats)
            z = _repeat_rows(z, repeats)
            p_emb = None if p_emb is None else _repeat_rows(p_emb, repeats)
        # The cache is private to this rollout, so it can grow in place (autograd off) instead of being
        # re-concatenated at every step; a sliding-window cache ignores this.
        cache.reserve(actions.shape[1] * self.predictor.tokens_per_frame)
        zs, ps = [], []
        for h in range(actions.shape[1]):
            z, p_emb_pred = self.predictor.step(z, actions[:, h], p_emb, cache)
            p = self._decode_proprio(p_emb_pred)
            if p is not None:
                # As a one-frame sequence: a step's (B, N, E) per-patch proprio must not read as (B, T, E) frames.
                p_emb = self._embed_proprio(p.unsqueeze(1)).squeeze(1)
            zs.append(z)
            ps.append(p)
            if stop_grad:
                z = z.detach()
                p_emb = None if p_emb is None else p_emb.detach()
        proprio = torch.stack(ps, 1) if ps and ps[0] is not None else None
        return LatentState(torch.stack(zs, 1), proprio)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def build_world_model(
    cfg: ModelConfig,
    *,
    raw_action_dim: int,
    proprio_dim: int,
    frameskip: int,
    action_mean: Tensor | None = None,
    action_std: Tensor | None = None,
    proprio_mean: Tensor | None = None,
    proprio_std: Tensor | None = None,
    load_weights: bool = True,
    encoder: Encoder | None = None,
) -> WorldModel:
    """Build a world model from its config and the dataset's dims and normalisation stats.

    ``load_weights=False`` skips the encoder's weight file (the caller loads a state dict that holds them);
    ``encoder`` replaces the one ``cfg.encoder`` would build.
    """
    pred_cfg = cfg.predictor
    if encoder is None:
        encoder = build_encoder(cfg.encoder, load_weights=load_weights)
    if cfg.pixel_decoder and encoder.observation_key != "pixels":
        raise ValueError(
            f"model.pixel_decoder reconstructs frames from image tokens; a {cfg.encoder.type} encoder reads "
            f"'{encoder.observation_key}', not pixels: set model.pixel_decoder=[]"
        )
    raw = cfg.proprio_space == "raw"
    # In the "raw" space the predictor embeds the normalised proprio itself, so its input width is P.
    emb = (proprio_dim if cfg.proprio_emb_dim > 0 else 0) if raw else cfg.proprio_emb_dim
    predictor = build_predictor(
        pred_cfg,
        embed_dim=encoder.embed_dim,
        grid=encoder.grid_size,
        action_dim=frameskip * raw_action_dim,
        proprio_emb_dim=emb,
    )
    prop_enc = ProprioEncoder(proprio_dim, emb) if emb > 0 and not raw else None
    # Only the "decoded" space decodes, and only predicted proprio embeddings.
    decoded = cfg.proprio_space == "decoded"
    prop_dec = ProprioDecoder(emb, proprio_dim) if emb > 0 and decoded and predictor.predicts_proprio else None
    zeros_a, ones_a = torch.zeros(raw_action_dim), torch.ones(raw_action_dim)
    zeros_p, ones_p = torch.zeros(proprio_dim), torch.ones(proprio_dim)
    return WorldModel(
        encoder,
        predictor,
        prop_enc,
        prop_dec,
        zeros_a if action_mean is None else torch.as_tensor(action_mean),
        ones_a if action_std is None else torch.as_tensor(action_std),
        zeros_p if proprio_mean is None else torch.as_tensor(proprio_mean),
        ones_p if proprio_std is None else torch.as_tensor(proprio_std),
        frameskip,
        cfg.proprio_space,
        PixelDecoder(encoder.embed_dim, encoder.grid_size, encoder.img_size, cfg.pixel_decoder)
        if cfg.pixel_decoder
        else None,
    )
