"""Training data: manifests, pairing, validation, augmentation, bundled sample photos."""
