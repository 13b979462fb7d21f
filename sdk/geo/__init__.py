"""Geofences: shapes and a spatial index (``shapes``), the per-shopper tracker (``tracker``)."""

from .shapes import Fence, FenceIndex, circle, polygon
from .tracker import GeofenceEvent, Geofences

__all__ = ["Fence", "FenceIndex", "GeofenceEvent", "Geofences", "circle", "polygon"]
