"""Barcodes: GTIN parsing and validation, the store's in-store layout, image decoding."""
