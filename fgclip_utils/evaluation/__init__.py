"""Evaluation: ranking metrics, split evaluation, retrieval, attributes and separability."""
