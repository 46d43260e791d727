"""The experiment config's schema: one dataclass per section, with the values each choice key accepts.

Every field is documented where it is declared; ``loading.py`` reads YAML and overrides into these classes and
``ranges.py`` holds the numbers each numeric key accepts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal


class ConfigError(ValueError):
    """A config file or override that does not match the schema."""


# The values a choice key accepts. The modules that act on a choice take their tuples from these types
# (``typing.get_args``), so a new value is added here once and the config accepts it where the code does.
EncoderType = Literal["conv", "keypoints", "dinov2", "dinov3", "vjepa", "vjepa2", "checkpoint", "state"]
PredictorType = Literal["adaln", "dino_wm", "vjepa2_ac"]
RopeMode = Literal["standard", "legacy"]
ProprioSpace = Literal["decoded", "embedding", "raw"]
Distance = Literal["l2", "l1", "smooth_l1"]
Regularizer = Literal["vicreg", "sigreg", "none"]
Schedule = Literal["cosine", "constant"]
Precision = Literal["auto", "fp32", "bf16"]
Preload = Literal["auto", "true", "false"]
DataLayout = Literal["auto", "hdf5", "droid_raw", "lerobot"]
PlannerName = Literal["cem", "mppi", "gd", "adam", "nevergrad", "icem"]
PlanCost = Literal["L1", "L2"]
PlanModel = Literal["world_model", "simulator"]
SimCost = Literal["state", "pixels"]
VideoFormat = Literal["gif", "mp4"]
GoalSource = Literal["env", "dset"]
EvalMode = Literal["inline", "separate"]
ProprioDynamics = Literal["predicted", "pose"]


@dataclass
class CollectConfig:
    episodes: int = 1000  # trajectories to generate
    episode_len: int = 50  # env steps per trajectory
    workers: int = 2  # collection processes
    seed: int = 0
    img_size: int = 64  # rendered frame side in pixels
    # data policy ("" = the env's default; Push-T: noisy_push | expert | random_walk; Metaworld: noisy_expert | direct)
    policy: str = ""


READER_OPTIONS = ("camera", "fps", "state", "action")  # what `data.reader_options` may set


@dataclass
class DataConfig:
    val_fraction: float = 0.05  # share of episodes held out for validation losses
    num_frames: int = 7  # frames per training window: context + predicted (W+1 in the paper's notation)
    frameskip: int = 5  # env steps between kept frames; their actions are concatenated into one model action
    preload: Preload | bool = "auto"  # "auto" | "true" | "false": load pixels into RAM (auto: when under 4 GiB)
    # "auto": train on a complete matching `jepa-wms encode` cache when the encoder is frozen; "off"; or a cache path
    latents: str | bool = "auto"
    normalize_actions: bool = True  # false: raw units, as the released DROID models (plan.init_std in m / rad)
    layout: DataLayout = "auto"  # "auto": trajectories.h5 if there, else a droid_raw / lerobot folder, unconverted
    reader_options: dict[str, Any] = field(default_factory=dict)  # video folders: camera, fps (lerobot: state, action)

    def __post_init__(self) -> None:
        # YAML reads the documented `preload: false` (and `true`, `off`, `no`, ...) as a bool.
        if isinstance(self.preload, bool):
            self.preload = "true" if self.preload else "false"
        # YAML 1.1 reads an unquoted `off` as false.
        if self.latents is False:
            self.latents = "off"
        if not isinstance(self.latents, str) or not self.latents:
            raise ConfigError(f"config key 'data.latents' must be 'auto', 'off' or a cache path, got {self.latents!r}")
        for name, value in self.reader_options.items():
            key = f"config key 'data.reader_options.{name}'"
            if name not in READER_OPTIONS:
                raise ConfigError(f"unknown {key} (valid: {', '.join(READER_OPTIONS)})")
            if name == "fps":
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                    raise ConfigError(f"{key} must be a positive number (the video frame rate), got {value!r}")
            elif not isinstance(value, str) or not value:
                raise ConfigError(f"{key} must be a non-empty string, got {value!r}")


@dataclass
class EncoderConfig:
    # "conv": small CNN trained end to end; "keypoints": K learned keypoints' (x, y) as one token of embed_dim = 2K
    # (encoders/keypoints.py; pretrain it with `jepa-wms pretrain`); "dinov2" | "dinov3" | "vjepa" | "vjepa2": frozen
    # foundation encoder (see `name`; `weights: official` downloads its official file); "state": no image, the env's
    # true state as one token of normalised features (encoders/state.py; embed_dim and grid_size are set from it)
    type: EncoderType = "conv"
    name: str = ""  # foundation-encoder preset, e.g. dinov2_vits14 (its width/grid must match embed_dim/grid_size)
    weights: str = ""  # official weight file: local path or URL ("" = random init, for tests and benchmarks);
    # type "checkpoint": a jepa-wms training checkpoint whose (frozen) encoder is reused
    trainable: bool = False  # foundation encoders only: fine-tune instead of freezing
    img_size: int = 32  # frames are resized to this before encoding
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    embed_dim: int = 64  # D, latent width per token
    grid_size: int = 4  # latent tokens per frame = grid_size²
    stem_patch: int = 0  # >0: first conv is a stem_patch×stem_patch patchify at that stride (reads 64 px directly)
    pixel_mean: list[float] = field(default_factory=list)  # per-channel normalisation; [] = the encoder's own
    pixel_std: list[float] = field(default_factory=list)  # (ImageNet for foundation encoders; DINO-WM used 0.5)
    normalize_output: bool = False  # parameter-free LayerNorm over D of every token (V-JEPA-2-AC's normalize_reps)
    state_features: str = ""  # type state: the feature layout, an env name ("" = the experiment's `env`)
    # type checkpoint: the config (embedded name or YAML) that pretrains the encoder (`jepa-wms pretrain`); `jepa-wms
    # demo` runs it on the demo's data and freezes its checkpoint instead of reading `weights`
    pretrain: str = ""


@dataclass
class PredictorConfig:
    # "adaln": JEPA-WM action-modulated ViT; "dino_wm": DINO-WM ViT with action/proprio channels on every token;
    # "vjepa2_ac": V-JEPA-2-AC ViT with an action and a proprio token per frame
    type: PredictorType = "adaln"
    pred_dim: int = 112  # adaln: width of the visual part of each token; vjepa2_ac: token width (dino_wm: unused)
    depth: int = 3
    num_heads: int = 4
    mlp_ratio: float = 4.0
    init_scale_adaln: float = 10.0  # AdaLN modulation init std = 0.02 × this (0 gives AdaLN-zero)
    rope: RopeMode = "standard"  # adaln/vjepa2_ac: "standard" true RoPE | "legacy" the original's (released weights)
    # frames one rollout step sees: 0 = all of them through a key/value cache (dino_wm: num_frames);
    # W > 0 = re-run the last W frames at every step, positions from 0 (the original planner used 2)
    context_window: int = 0
    num_frames: int = 0  # dino_wm: frames in the learned position table; 0 = data.num_frames
    action_emb_dim: int = 10  # dino_wm: action channels appended to every token
    dim_head: int = 64  # dino_wm: width of one attention head (inner width = num_heads × dim_head)
    ffn_dim: int = 0  # dino_wm: feed-forward hidden width; 0 = mlp_ratio × token width (the original used 2048)
    dropout: float = 0.0  # dino_wm: attention and feed-forward dropout (the original trained with 0.1)
    predict_proprio: bool = True  # vjepa2_ac: a proprio_head predicts the next proprio (original checkpoints: false)
    normalize_reps: bool = False  # vjepa2_ac: parameter-free LayerNorm on the predicted latents


@dataclass
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    proprio_emb_dim: int = 16  # 0 disables proprio input and proprio cost
    # Space of the proprio latent (what rollouts feed back and the planning cost compares): "decoded" = embedded
    # by a linear encoder, predicted embeddings decoded back to normalised proprio (ours, cannot collapse);
    # "embedding" = the embedding itself (the original JEPA-WM / DINO-WM models); "raw" = normalised proprio given
    # straight to the predictor, which embeds it (the original V-JEPA-2-AC; proprio_emb_dim > 0 just switches it on)
    proprio_space: ProprioSpace = "decoded"
    # Channels of a conv decoder from the encoder's tokens back to pixels (coarsest first), trained with the
    # loss.recon_weight reconstruction term so that a small encoder keeps what the frame shows; [] = none.
    pixel_decoder: list[int] = field(default_factory=list)


@dataclass
class LossConfig:
    distance: Distance = "l2"  # "l2" (MSE) | "l1" | "smooth_l1", averaged over latent dims
    rollout_steps: int = 6  # R: autoregressive steps in the rollout term; 1 = teacher forcing only
    rollout_stop_grad: bool = False  # detach the fed-back predictions (no backprop through time)
    proprio_weight: float = 1.0  # weight of the decoded-proprio error next to the visual error
    target_stop_grad: bool = False  # detach encoder targets (only sensible with a frozen encoder)
    regularizer: Regularizer = "vicreg"  # "vicreg" | "sigreg" | "none": anti-collapse loss on encoder latents
    reg_weight: float = 1.0
    vicreg_var_weight: float = 10.0  # the usual 1 leaves the Wall encoder collapsed (see docs)
    vicreg_cov_weight: float = 0.04
    sigreg_projections: int = 256
    recon_weight: float = 1.0  # pixel reconstruction of each window's first frame (needs model.pixel_decoder)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    min_lr: float = 1e-4  # end of the cosine decay
    warmup_steps: int = 100
    schedule: Schedule = "cosine"
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0  # max global grad norm; 0 disables


@dataclass
class TrainConfig:
    seed: int = 0
    epochs: int = 20
    # stop after this many optimizer steps (0: no cap); the schedule ends there, mid-epoch if need be. Pretraining on
    # a large dataset uses it: `pusht_keypoints_encoder_5k` pretrains as long on 5,000 trajectories as on 1,000.
    max_steps: int = 0
    batch_size: int = 128  # global batch, split over DDP ranks
    precision: Precision = "auto"  # auto: bf16 autocast where the hardware has it
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    log_every: int = 20  # steps between CSV/TensorBoard rows
    keep_epoch_checkpoints: bool = False  # also keep epoch_NNN.pt next to last.pt
    # steps between checkpoints inside an epoch (0: at epoch ends only); a resume from one is exact too
    checkpoint_every: int = 0
    # epochs between planning evaluations of that epoch's checkpoint (kept as epoch_NNN.pt) into OUT/evals/epoch_NNN,
    # with the plan.*/eval.* settings; success is logged next to the losses (0: none)
    eval_every: int = 0
    # "inline": the training processes evaluate (all ranks share the episodes) before the next epoch; "separate":
    # a background `jepa-wms eval` process (a SLURM job when training runs under --slurm) while training goes on
    eval_mode: EvalMode = "inline"
    eval_episodes: int = 0  # episodes of each of these evaluations (0: eval.episodes)


@dataclass
class PlanConfig:
    planner: PlannerName = "cem"  # "cem" | "mppi" | "gd" | "adam" | "nevergrad" (needs the [planning] extra) | "icem"
    ng_optimizer: str = "NGOpt"  # planner=nevergrad: a nevergrad.optimizers.registry name
    temperature: float = 0.5  # planner=mppi: softmax temperature on normalised costs (the original's value)
    lr: float = 1.0  # planner=gd|adam: step size on the normalised actions (the original's value)
    action_noise: float = 0.003  # planner=gd|adam: Gaussian noise std added after every step
    icem_beta: float = 2.0  # planner=icem: coloured-noise exponent over the horizon (0 = white noise, as CEM)
    icem_decay: float = 1.25  # planner=icem: iteration i samples max(2·num_elites, num_samples·decay^-i)
    icem_keep_elites: float = 0.3  # planner=icem: share of the elites carried to the next iteration and replan
    icem_momentum: float = 0.1  # planner=icem: weight of the previous mean/std in each update
    num_samples: int = 300
    iterations: int = 30
    num_elites: int = 10
    init_std: float = 1.0  # in normalised action units
    horizon: int = 6  # H, model steps per plan
    execute: int = 6  # model actions executed before replanning (H = execute: one open-loop plan)
    cost: PlanCost = "L2"  # "L2" | "L1" latent distance on the final predicted step
    alpha: float = 1.0  # weight of the proprio term in the cost
    # clip planned actions. A number c: ±c data std in every dim (the planner's normalised units; 0 disables). A list
    # [c_0, …, c_{A-1}], one per raw action dim of one env step: |a_d| <= c_d in the data's own units (7-D pose:
    # metres, radians, gripper), mapped through the model's action stats (DROID: [0.1,0.1,0.1,0.1,0.1,0.1,0.75])
    action_clip: float | list[float] = 2.0
    episode_chunk: int = 32  # episodes planned together in one batch (at most: memory_gb may lower it)
    # frames kept in the predictor's key/value cache during planning rollouts (sliding-window attention, positions
    # stay absolute): 0 = all of them; 2 bounds the cache like the original planner's 2-frame window
    kv_window: int = 0
    # planning memory budget in GB (1e9 bytes) that sizes the episodes planned together and, if one episode's
    # candidates do not fit, candidate sub-batches (planning/memory.py); 0 = auto, 70 % of the free memory
    memory_gb: float = 0.0
    # pad attention heads with zeros to a multiple of this for the planning rollouts (exact; e.g. 8 or 32 lets head
    # size 25 use the fused SDPA kernels on GPUs, at more attention FLOPs and cache memory); 0 = off
    pad_heads: int = 0
    precision: Precision = "auto"  # of the planning rollouts (auto: bf16 where the hardware has it)
    # "world_model": plan with the trained model; "simulator": the oracle, candidates rolled out in the true env
    model: PlanModel = "world_model"
    sim_cost: SimCost = "state"  # model=simulator: "state" (the env's state_cost) | "pixels" (rendered frame + proprio)
    sim_workers: int = 0  # model=simulator: rollout processes (0 = one per CPU core); results do not depend on it
    # proprio of a rollout: "predicted" (the model's own prediction; a model that predicts none keeps the observed
    # proprio) | "pose": 7-D pose proprio advanced by composing it with each planned action (datasets/pose_actions.py),
    # as the original planned V-JEPA-2-AC on DROID (needs raw 7-D pose actions and proprio)
    proprio_dynamics: ProprioDynamics = "predicted"

    def __post_init__(self) -> None:
        self.action_clip = _action_clip(self.action_clip)


def _action_clip(value: Any) -> float | list[float]:
    """``plan.action_clip`` as a float or a list of floats; the ranges table then checks every bound is >= 0."""
    key = "config key 'plan.action_clip'"

    def number(item: Any, where: str) -> float:
        if isinstance(item, str):  # YAML 1.1 reads '5e-2' (no dot) as a string
            try:
                return float(item)
            except ValueError:
                pass
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"{where} must be a number or a list of numbers (one per action dim), got {item!r}")
        return float(item)

    if isinstance(value, list | tuple):
        if not value:
            raise ConfigError(f"{key} is []; expected a number or one bound per action dim")
        return [number(v, f"config key 'plan.action_clip[{i}]'") for i, v in enumerate(value)]
    return number(value, key)


@dataclass
class EvalConfig:
    episodes: int = 96
    seed: int = 0
    videos: int = 8  # episodes to write a video for
    video_format: VideoFormat = "gif"
    goal_source: GoalSource = "env"  # "env": the env's own sampler; "dset": held-out dataset segments (Push-T protocol)
    goal_dataset: str = ""  # dataset for goal_source=dset; default: the one the checkpoint was trained on
    # env steps per episode (0 = the env's reference protocol: 30 on Wall/PointMaze/Push-T, 100 on Metaworld);
    # success is judged at the end only. With plan.execute < plan.horizon: DINO-WM-style replanning
    max_steps: int = 0
    # an image head on this checkpoint's encoder (jepa-wms train-head --head image): videos get a third panel, the
    # decoded frames of the plan the planner chose ("" = agent | goal only); it changes no result
    head: str = ""


@dataclass
class ExperimentConfig:
    env: str = "wall"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    collect: CollectConfig = field(default_factory=CollectConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
