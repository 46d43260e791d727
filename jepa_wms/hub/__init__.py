"""Released JEPA-WMs models by name: ``model, preprocessor = jepa_wms.hub.load("jepa_wm_pusht")``.

Names: ``jepa_wm_{droid,metaworld,pusht,pointmaze,wall}``, ``dino_wm_{droid,metaworld,pusht,pointmaze,wall}``,
``vjepa2_ac_droid``, ``vjepa2_ac_oss`` (the same as the original's ``hubconf.py``; this repository's ``hubconf.py``
exposes them to ``torch.hub.load``).
"""

from .load import Preprocessor, export, load, published_config
from .original import OriginalCheckpoint, read_original_checkpoint
from .specs import DATA_STATS, PUBLISHED_MODELS, PublishedModel

__all__ = [
    "DATA_STATS",
    "PUBLISHED_MODELS",
    "OriginalCheckpoint",
    "Preprocessor",
    "PublishedModel",
    "export",
    "load",
    "published_config",
    "read_original_checkpoint",
]
