"""Training: contrastive losses, the sharded trainer, Orbax checkpoints and model soups."""
