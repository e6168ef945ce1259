"""Training: contrastive losses, the sharded trainer, mined hard negatives and model soups
(checkpoints: `gemb.checkpoint`)."""
