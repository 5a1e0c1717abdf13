"""Training a spec on cached features: clips as tensors, clip-level scoring, augmentation, the loop,
and the per-study memo that turns cached features into normalised train/validation tensors."""
