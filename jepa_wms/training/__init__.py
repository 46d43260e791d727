"""Training: losses, optimizer and schedule, checkpoints, logs, the training loop, encoder pretraining and the latent
cache's encoding pass (``encode.py``)."""

from .losses import world_model_loss
from .pretrain import pretrain
from .train import TrainingError, train

__all__ = ["TrainingError", "pretrain", "train", "world_model_loss"]
