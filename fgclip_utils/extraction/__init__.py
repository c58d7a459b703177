"""Extraction: loading CLIP, running it, the crop pipeline, the row file, the embedding cache, the naive
reference loop."""
