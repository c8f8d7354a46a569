"""Hyperparameter searches on cached features: the linear-probe C sweep and random search with halving.

Importing this package does not import torch; the batched solver imports it when it runs.
"""
