"""The published JEPA-WMs models by name: where their weights live and how to rebuild them.

Names, files and settings are those of the original release (its ``hubconf.py`` and evaluation configs). Widths
and depths are read from the checkpoint's tensor shapes; what shapes cannot tell (head counts, encoder, image size,
pixel normalisation, frameskip, planning protocol) is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..encoders.base import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["DATA_STATS", "PUBLISHED_MODELS", "PublishedModel"]

HF_BASE = "https://huggingface.co/facebook/jepa-wms/resolve/main"
FAIR_BASE = "https://dl.fbaipublicfiles.com/jepa-wms"
IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # DINO-WM baselines normalise pixels to [-1, 1]

# Action/proprio normalisation of the training datasets, as released with the original models (none is stored in
# the checkpoints). Wall and Metaworld are not in that table: pass `stats=` or `dataset=` to `jepa_wms.hub.load`.
DATA_STATS: dict[str, dict[str, list[float]]] = {
    "pusht": {
        "action_mean": [-0.008700000122189522, 0.006800000090152025],
        "action_std": [0.20190000534057617, 0.20020000636577606],
        "proprio_mean": [236.61549377441406, 264.5674133300781, -2.9303202629089355, 2.543079137802124],
        "proprio_std": [101.12020111083984, 87.01119995117188, 74.8455581665039, 74.14009094238281],
    },
    "pointmaze": {
        "action_mean": [7.821338658686727e-05, 0.0006003659800626338],
        "action_std": [0.5769129991531372, 0.577587902545929],
        "proprio_mean": [1.8130563497543335, 1.9377127885818481, -0.0039275349117815495, -0.019777977839112282],
        "proprio_std": [1.0055010318756104, 0.9630089402198792, 1.6802769899368286, 1.9319307804107666],
    },
    # DROID trains on raw (unnormalised) 7-D pose deltas and poses.
    "droid": {"action_mean": [0.0] * 7, "action_std": [1.0] * 7, "proprio_mean": [0.0] * 7, "proprio_std": [1.0] * 7},
}


@dataclass(frozen=True)
class PublishedModel:
    """One released world model.

    Attributes:
        name: the hub name (``jepa_wm_pusht``, ...).
        env: our env name to plan in (``droid`` has no simulator).
        file: file name under the release URLs.
        predictor: ``adaln`` | ``dino_wm`` | ``vjepa2_ac`` (checked against the checkpoint's keys).
        num_heads: predictor attention heads (no tensor records them; ``jepa_wms.hub.load(num_heads=)`` overrides).
        encoder_type, encoder_name, img_size, pixel_norm: the frozen encoder and its preprocessing.
        frameskip: env steps per model action (the model action concatenates them).
        raw_action_dim: env action width.
        stats: key of :data:`DATA_STATS`, or None when the normalisation is not published.
        normalize_reps: parameter-free LayerNorm on encoder and predictor outputs (V-JEPA-2-AC).
        plan: planning settings of the original evaluation config (``plan.*`` config keys).
    """

    name: str
    env: str
    file: str
    predictor: str
    encoder_type: str
    encoder_name: str
    img_size: int
    pixel_norm: tuple[tuple[float, ...], tuple[float, ...]]
    frameskip: int
    raw_action_dim: int
    stats: str | None
    num_heads: int = 16
    normalize_reps: bool = False
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def urls(self) -> tuple[str, str]:
        """Hugging Face first (the original's primary source), then the FAIR mirror."""
        return f"{HF_BASE}/{self.name}.pth.tar", f"{FAIR_BASE}/{self.file}"


_SIM_PLAN = {"horizon": 6, "execute": 6, "iterations": 30, "num_samples": 300, "num_elites": 10, "alpha": 0.1}
_MW_PLAN = {**_SIM_PLAN, "execute": 3}
# Raw DROID units (the released models take unnormalised actions): init std 0.1 m / rad, the original's max_norms.
_DROID_PLAN = {
    "horizon": 3, "execute": 3, "iterations": 15, "num_samples": 300, "num_elites": 10, "alpha": 0.0,
    "init_std": 0.1, "action_clip": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.75],
}  # fmt: skip
_SIM_ENVS = {"wall": "wall", "pointmaze": "pointmaze", "pusht": "pusht", "metaworld": "metaworld-reach-wall"}
_SHORT = {"wall": "wall", "pointmaze": "mz", "pusht": "pt", "metaworld": "mw"}
_ACTION_DIM = {"wall": 2, "pointmaze": 2, "pusht": 2, "metaworld": 4}


def _sim(kind: str, env: str) -> PublishedModel:
    jepa = kind == "jepa_wm"
    return PublishedModel(
        name=f"{kind}_{env}",
        # The released Metaworld JEPA-WM is evaluated on reach-wall, the DINO-WM one on reach.
        env="metaworld-reach" if env == "metaworld" and not jepa else _SIM_ENVS[env],
        file=f"{_SHORT[env]}_{'jepa-wm' if jepa else 'dino-wm'}.pth.tar",
        predictor="adaln" if jepa else "dino_wm",
        encoder_type="dinov2",
        encoder_name="dinov2_vits14",
        img_size=224,
        pixel_norm=IMAGENET if jepa else HALF,
        frameskip=5,
        raw_action_dim=_ACTION_DIM[env],
        stats=env if env in DATA_STATS else None,
        plan=_MW_PLAN if env == "metaworld" else _SIM_PLAN,
    )


def _droid(name: str, file: str, predictor: str, encoder: str, img: int, **kw: Any) -> PublishedModel:
    kw.setdefault("plan", _DROID_PLAN)
    return PublishedModel(
        name=name,
        env="droid",
        file=file,
        predictor=predictor,
        encoder_type=encoder.split("_")[0],
        encoder_name=encoder,
        img_size=img,
        pixel_norm=HALF if predictor == "dino_wm" else IMAGENET,
        frameskip=1,
        raw_action_dim=7,
        stats="droid",
        **kw,
    )


PUBLISHED_MODELS: dict[str, PublishedModel] = {
    **{m.name: m for m in (_sim(k, e) for k in ("jepa_wm", "dino_wm") for e in _SIM_ENVS)},
    "jepa_wm_droid": _droid("jepa_wm_droid", "droid_jepa-wm_noprop.pth.tar", "adaln", "dinov3_vitl16", 256),
    "dino_wm_droid": _droid("dino_wm_droid", "droid_dino-wm_noprop.pth.tar", "dino_wm", "dinov2_vits14", 224),
    "vjepa2_ac_droid": _droid(
        "vjepa2_ac_droid", "droid_vj2ac_noprop.pth.tar", "vjepa2_ac", "vjepa2_vitg16", 256, normalize_reps=True
    ),
    # The V-JEPA 2 open-source AC model (with proprio), whose training loss had a bug (JEPA-WMs paper, appendix).
    # Its proprio token is fed the pose composed with the planned actions, as the original's planner did.
    "vjepa2_ac_oss": _droid(
        "vjepa2_ac_oss",
        "droid_vj2ac_oss-prop.pth.tar",
        "vjepa2_ac",
        "vjepa2_vitg16",
        256,
        normalize_reps=True,
        plan={**_DROID_PLAN, "proprio_dynamics": "pose"},
    ),
}
