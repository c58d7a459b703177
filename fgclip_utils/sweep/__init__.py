"""Backbone sweeps: named panels of open_clip backbones, the sweep itself, and its command line records."""
