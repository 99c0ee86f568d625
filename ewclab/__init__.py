"""ewclab: a hands-on lab for catastrophic forgetting and Elastic Weight Consolidation."""

__version__ = "0.1.0"
