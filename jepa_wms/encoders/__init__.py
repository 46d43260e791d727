"""Image encoders (uint8 frames -> patch tokens) and anti-collapse regularisers for trained ones."""

from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.conv import ConvEncoder
from jepa_wms.encoders.regularizers import sigreg, vicreg

__all__ = ["ConvEncoder", "Encoder", "sigreg", "vicreg"]
