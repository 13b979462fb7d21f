"""Model bundles: the on-disk format and signing, item-id encoding, the onnxruntime scorer."""
