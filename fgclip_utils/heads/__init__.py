"""Heads: learned similarities S(v, t) on frozen CLIP embeddings, their losses, training and checkpoints."""
