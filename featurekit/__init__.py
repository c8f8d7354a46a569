"""featurekit: extract frozen-backbone image embeddings once, fit classifier heads on the cache.

Importing featurekit (or featurekit.heads / cache / evaluation / reports) never imports torch.
"""

__version__ = "0.1.0"
