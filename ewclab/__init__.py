"""ewclab: a hands-on lab for catastrophic forgetting and Elastic Weight Consolidation.

ewclab logs through the ``"ewclab"`` logger, silent unless the application configures
logging: ``logging.basicConfig(level=logging.DEBUG)`` shows every training step's loss,
``level=logging.INFO`` task boundaries, consolidations and evaluations.
"""

import logging

from ewclab.buffer import TaskBuffer
from ewclab.data import Task, batchify, load_task, to_nchw
from ewclab.ewc import EWC
from ewclab.fisher import fisher_diagonal
from ewclab.learner import DivergenceError
from ewclab.models import MLP, AlexNet, TestNet
from ewclab.persist import load

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "EWC", "MLP", "AlexNet", "DivergenceError", "Task", "TaskBuffer", "TestNet",
    "__version__", "batchify",
    "fisher_diagonal", "load", "load_task", "to_nchw",
]
