"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a whole module (``pytestmark = pytest.mark.usefixtures(...)``):
    on a CPU shared with other jobs two OpenMP threads waiting for each other made training
    steps several times slower; the previous count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
