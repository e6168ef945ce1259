"""Training: contrastive losses, the sharded trainer and model soups (checkpoints: `gemb.checkpoint`)."""
