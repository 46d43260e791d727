"""Training: losses, optimizer and schedule, checkpoints, logs, the training loop and encoder pretraining."""

from .losses import world_model_loss
from .pretrain import pretrain
from .train import TrainingError, train

__all__ = ["TrainingError", "pretrain", "train", "world_model_loss"]
