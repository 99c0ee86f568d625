"""batchify: the seed's endless batch generator, without the seed's skipped samples."""

from __future__ import annotations

from collections import Counter
from itertools import islice

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ewclab import batchify


def _seed_batchify(X, y, batch_size=1000):
    """The seed's generator, verbatim in behaviour (kept here to show its bug)."""
    i = 0
    while 1:
        batch_X, batch_y = X[i : i + batch_size], y[i : i + batch_size]
        if batch_X.shape[0] != batch_size:
            i = 0
            difference = batch_size - batch_X.shape[0]
            batch_X = np.vstack((batch_X, X[i : i + difference]))
            batch_y = np.hstack((batch_y, y[i : i + difference]))
        yield batch_X, batch_y
        i += batch_size


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 50),
    passes=st.integers(1, 4),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_sample_is_yielded_once_per_pass(n, batch_size, passes, shuffle, seed) -> None:
    X = np.arange(n)[:, None] * 10
    y = np.arange(n)
    total = n * passes
    n_batches = -(-total // batch_size)
    batches = list(islice(batchify(X, y, batch_size, shuffle=shuffle, seed=seed), n_batches))
    assert all(len(bx) == batch_size and len(by) == batch_size for bx, by in batches)
    seen = np.concatenate([by for _, by in batches])
    for bx, by in batches:  # X and y stay aligned
        np.testing.assert_array_equal(bx[:, 0], by * 10)
    complete = seen[: total]
    assert Counter(complete.tolist()) == {i: passes for i in range(n)}
    # each pass is a permutation of the data
    for k in range(passes):
        assert sorted(complete[k * n : (k + 1) * n].tolist()) == list(range(n))


def test_seed_version_skips_samples_ours_does_not() -> None:
    X, y = np.arange(10)[:, None], np.arange(10)
    seed_seen = np.concatenate([b for _, b in islice(_seed_batchify(X, y, 4), 5)])
    ours_seen = np.concatenate([b for _, b in islice(batchify(X, y, 4), 5)])
    assert Counter(seed_seen.tolist()) != Counter(ours_seen.tolist())
    assert sorted(Counter(ours_seen.tolist()).values()) == [2] * 10
    assert ours_seen.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_smaller_data_than_a_batch() -> None:
    X, y = np.arange(3)[:, None], np.arange(3)
    bx, by = next(batchify(X, y, batch_size=7))
    assert by.tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_shuffle_reshuffles_each_pass_and_is_seeded() -> None:
    X, y = np.zeros((20, 1)), np.arange(20)
    a = [b.tolist() for _, b in islice(batchify(X, y, 20, shuffle=True, seed=3), 3)]
    b = [b.tolist() for _, b in islice(batchify(X, y, 20, shuffle=True, seed=3), 3)]
    assert a == b
    assert a[0] != a[1] != a[2]
    assert a[0] != list(range(20))


def test_tensors_stay_tensors() -> None:
    X, y = torch.arange(12.0).reshape(6, 2), torch.arange(6)
    bx, by = next(batchify(X, y, 4, shuffle=True, seed=0))
    assert isinstance(bx, torch.Tensor) and isinstance(by, torch.Tensor)
    torch.testing.assert_close(bx[:, 0], by.float() * 2)


@pytest.mark.parametrize(
    "X, y, batch_size, error, message",
    [
        (np.zeros((0, 2)), np.zeros(0), 4, ValueError, "at least one sample"),
        (np.zeros((3, 2)), np.zeros(2), 4, ValueError, "same length, got 3 and 2"),
        (np.zeros((3, 2)), np.zeros(3), 0, ValueError, "batch_size must be an int >= 1, got 0"),
        (np.zeros((3, 2)), np.zeros(3), 2.5, TypeError, "batch_size must be an int"),
    ],
)
def test_bad_arguments_raise_at_call_time(X, y, batch_size, error, message) -> None:
    with pytest.raises(error, match=message):
        batchify(X, y, batch_size)


# -- the bounded form: for X_b, y_b in batchify(..., epochs=k) ends --------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 50),
    epochs=st.integers(1, 4),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_epochs_yields_every_sample_exactly_epochs_times_then_stops(
    n, batch_size, epochs, shuffle, seed
) -> None:
    X, y = np.arange(n)[:, None] * 10, np.arange(n)
    batches = list(batchify(X, y, batch_size, shuffle=shuffle, seed=seed, epochs=epochs))
    sizes = [len(by) for _, by in batches]
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1) and 1 <= sizes[-1] <= batch_size
    seen = np.concatenate([by for _, by in batches])
    assert Counter(seen.tolist()) == {i: epochs for i in range(n)}
    for bx, by in batches:
        np.testing.assert_array_equal(bx[:, 0], by * 10)
    endless = np.concatenate([b for _, b in islice(
        batchify(X, y, batch_size, shuffle=shuffle, seed=seed), len(batches))])
    np.testing.assert_array_equal(seen, endless[: len(seen)])  # the same order as endless


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), batch_size=st.integers(1, 20), steps=st.integers(1, 10))
def test_steps_yields_that_many_full_batches(n, batch_size, steps) -> None:
    X, y = np.arange(n)[:, None], np.arange(n)
    batches = list(batchify(X, y, batch_size, steps=steps))
    assert [len(by) for _, by in batches] == [batch_size] * steps


def test_a_for_loop_over_the_bounded_form_ends() -> None:
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    labels = [by.tolist() for _, by in batchify(X, y, batch_size=4, epochs=1)]
    assert labels == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(list(batchify(X, y, batch_size=4, steps=5))) == 5
    assert len(list(islice(batchify(X, y, batch_size=4), 1000))) == 1000  # endless by default
