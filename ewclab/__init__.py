"""ewclab: a hands-on lab for catastrophic forgetting and Elastic Weight Consolidation."""

from ewclab.data import Task, batchify, load_task, to_nchw

__version__ = "0.1.0"

__all__ = ["Task", "batchify", "load_task", "to_nchw", "__version__"]
