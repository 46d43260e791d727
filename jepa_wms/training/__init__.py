"""Training: losses, optimizer and schedule, checkpoints, logs and the training loop."""

from .losses import world_model_loss
from .train import TrainingError, train

__all__ = ["TrainingError", "train", "world_model_loss"]
