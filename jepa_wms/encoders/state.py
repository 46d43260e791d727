"""``model.encoder.type: state``: the env's true low-dimensional state as the latent, instead of an image encoding.

A state world model separates what the data and the predictor can learn from what an image encoder keeps: the same
predictors train on, and the same planners plan with, one token per frame holding the frame's state features,
z-normalised with the training dataset's statistics. The encoder has no parameters (nothing to train or collapse);
its normalisation is two buffers, so a checkpoint carries it.

Features per env (``STATE_FEATURES``; a name ``metaworld-<task>`` selects the Metaworld layout):

- ``wall``: the dot's (x, y), as is.
- ``pointmaze``: (x, y, vx, vy), as is.
- ``pusht``: (agent x, y, block x, y, cos θ, sin θ, agent vx, vy) from the 7-d state (θ = block angle in [0, 2π)).
  The angle becomes (cos, sin) so that θ = 0.01 and θ = 2π − 0.01 are neighbours, as they are in the world; the raw
  angle would put them 2π apart and make the latent jump where the block merely turns. The agent velocity stays:
  the PD-driven agent's next position depends on it, so without it the latent would not be Markov (it is also in the
  proprio, and a pixel model cannot see it).
- ``droid``: the 7-D robot pose that robot layouts store as the state (xyz, extrinsic Euler xyz, gripper) as
  (xyz, the rotation matrix's first two columns, gripper): continuous where the Euler angles wrap at ±π (the
  stand-in's hand points down, roll ≈ π), and a rotation moves the features by its size.
- ``metaworld``: the first 39 entries of the state, the Metaworld observation (hand xyz, gripper, object poses, the
  same 18 values one step earlier, goal xyz); the rest is MuJoCo integration state and task bookkeeping.

Inputs are raw states (B, T, S) as the dataset's ``/state`` rows and ``obs["state"]`` hold them; they are encoded
in float32, the precision the dataset stores, so a plan-time state encodes exactly like a training row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from jepa_wms.encoders.base import Encoder

__all__ = ["STATE_FEATURES", "StateEncoder", "StateFeatures", "build_state_encoder", "state_features"]

# Features constant over the whole dataset would divide by zero; as the action/proprio Normalizer does.
STD_FLOOR = 1e-6


@dataclass(frozen=True)
class StateFeatures:
    """How one env's state turns into features.

    Attributes:
        name: the feature layout (an env name, or ``metaworld`` for every ``metaworld-<task>``).
        state_dim: entries of the state the features read (a state must have exactly this many, or at least this
            many when ``exact`` is False: Metaworld state sizes differ per task).
        names: one name per feature; D = ``len(names)``.
        fn: raw states ``(..., S)`` -> features ``(..., D)``.
        exact: whether the state must have exactly ``state_dim`` entries.
    """

    name: str
    state_dim: int
    names: tuple[str, ...]
    fn: Callable[[torch.Tensor], torch.Tensor]
    exact: bool = True

    @property
    def dim(self) -> int:
        return len(self.names)


def _first(n: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda state: state[..., :n]


def _pusht(state: torch.Tensor) -> torch.Tensor:
    angle = state[..., 4:5]
    return torch.cat([state[..., 0:4], torch.cos(angle), torch.sin(angle), state[..., 5:7]], dim=-1)


def _pose(state: torch.Tensor) -> torch.Tensor:
    from jepa_wms.datasets.pose_actions import euler_to_matrix

    rot = euler_to_matrix(state[..., 3:6])[..., :2]  # (..., 3, 2): the x and y columns
    return torch.cat([state[..., 0:3], rot.flatten(-2), state[..., 6:7]], dim=-1)


STATE_FEATURES: dict[str, StateFeatures] = {
    "wall": StateFeatures("wall", 2, ("x", "y"), _first(2)),
    "pointmaze": StateFeatures("pointmaze", 4, ("x", "y", "vx", "vy"), _first(4)),
    "pusht": StateFeatures(
        "pusht",
        7,
        ("agent_x", "agent_y", "block_x", "block_y", "cos_angle", "sin_angle", "agent_vx", "agent_vy"),
        _pusht,
    ),
    "droid": StateFeatures("droid", 7, ("x", "y", "z", "r00", "r01", "r10", "r11", "r20", "r21", "gripper"), _pose),
    "metaworld": StateFeatures("metaworld", 39, tuple(f"obs_{i}" for i in range(39)), _first(39), exact=False),
}


def state_features(env: str) -> StateFeatures:
    """The feature layout of ``env`` (``metaworld-<task>`` names share the Metaworld one); ValueError if unknown."""
    key = "metaworld" if env.startswith("metaworld-") and len(env) > len("metaworld-") else env
    if key not in STATE_FEATURES:
        raise ValueError(
            f"model.encoder.type=state has no state features for env {env!r}; known: "
            f"{', '.join(k for k in STATE_FEATURES if k != 'metaworld')}, metaworld-<task> "
            f"(set model.encoder.state_features, or add a layout to jepa_wms.encoders.state.STATE_FEATURES)"
        )
    return STATE_FEATURES[key]


class StateEncoder(Encoder):
    """Env states ``(B, T, S)`` -> one token ``(B, T, 1, D)`` of z-normalised state features.

    ``feature_mean``/``feature_std`` (buffers, (D,)) start at 0/1; ``fit`` sets them from the training dataset's
    ``/state`` rows. The encoder reads ``obs["state"]`` / the batch's ``state``, never pixels
    (``observation_key = "state"``).
    """

    observation_key = "state"

    def __init__(self, features: str | StateFeatures) -> None:
        spec = state_features(features) if isinstance(features, str) else features
        super().__init__(embed_dim=spec.dim, grid_size=1, img_size=1, trainable=False)
        self.features = spec
        self.register_buffer("feature_mean", torch.zeros(spec.dim))
        self.register_buffer("feature_std", torch.ones(spec.dim))

    def set_trainable(self, trainable: bool) -> StateEncoder:
        if trainable:
            raise ValueError("model.encoder.type=state has no parameters to train; set model.encoder.trainable=false")
        return super().set_trainable(False)

    def _check(self, state: torch.Tensor | np.ndarray, what: str, ndim: int) -> None:
        spec = self.features
        size = state.shape[-1] if state.ndim else 0
        ok = size == spec.state_dim if spec.exact else size >= spec.state_dim
        if state.ndim != ndim or not ok:
            need = f"{spec.state_dim}" if spec.exact else f">= {spec.state_dim}"
            raise ValueError(
                f"StateEncoder({spec.name!r}).{what}: expected env states with {need} entries in the last of "
                f"{ndim} dims, got shape {tuple(state.shape)}"
            )

    def state_to_features(self, state: torch.Tensor) -> torch.Tensor:
        """Raw states ``(..., S)`` -> un-normalised features ``(..., D)`` in float32."""
        return self.features.fn(state.to(torch.float32))

    @torch.no_grad()
    def fit(self, states: np.ndarray | torch.Tensor) -> StateEncoder:
        """Set the normalisation to the mean/std of the features of ``states`` (N, S) (std floored at 1e-6)."""
        self._check(states, "fit", 2)
        if states.shape[0] == 0:
            raise ValueError("StateEncoder.fit: no states to fit the normalisation on")
        feats = self.state_to_features(torch.tensor(np.asarray(states, dtype=np.float32))).double()
        if not bool(torch.isfinite(feats).all()):
            raise ValueError(f"StateEncoder({self.features.name!r}).fit: the states' features hold NaN or inf")
        self.feature_mean.copy_(feats.mean(0))
        self.feature_std.copy_(feats.std(0, unbiased=False).clamp_min(STD_FLOOR))
        return self

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw states ``(B, S)`` -> tokens ``(B, 1, D)``."""
        return self.normalize(self.state_to_features(x))[:, None]

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        raise ValueError(
            "StateEncoder reads env states, not pixels (model.encoder.type=state): pass the 'state' array "
            "(e.g. WorldModel.encode(state=...))"
        )

    def encode_frames(self, state: torch.Tensor) -> torch.Tensor:
        """Raw env states ``(B, T, S)`` -> tokens ``(B, T, 1, D)``."""
        state = torch.as_tensor(state)
        self._check(state, "encode_frames", 3)
        batch, frames = state.shape[:2]
        tokens = self(state.to(self.feature_mean.device).flatten(0, 1))
        if self.normalize_output:
            tokens = F.layer_norm(tokens, tokens.shape[-1:])
        return tokens.unflatten(0, (batch, frames))


def build_state_encoder(features: str, trainable: bool = False) -> StateEncoder:
    """The state encoder of ``model.encoder.state_features`` (an env name)."""
    encoder = StateEncoder(features)
    if trainable:
        encoder.set_trainable(True)  # raises: nothing to train
    return encoder
