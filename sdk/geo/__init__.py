"""Geofences: shapes, the spatial index and the per-shopper enter/dwell/exit tracker."""
