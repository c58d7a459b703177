"""Data: FG-OVD splits, the synthetic benchmark, COCO images and captions, downloads and the asset registry."""
