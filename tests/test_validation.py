"""check_batch / to_float_input: accepted forms, conversions and error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ewclab.validation import InputSpec, check_batch, to_float_input

RGB = InputSpec(num_classes=10, channels=3, min_size=7)
GRAY = InputSpec(num_classes=10, channels=1, min_size=16)
FLAT = InputSpec(num_classes=10, features=784)
CPU = torch.device("cpu")


def test_uint8_is_scaled_and_one_channel_repeated_without_touching_the_input():
    X = np.full((2, 1, 8, 8), 255, np.uint8)
    Xt, yt = check_batch(X, np.array([0, 9]), RGB)
    assert Xt.dtype == torch.uint8 and yt.tolist() == [0, 9]
    out = to_float_input(Xt, RGB.channels, CPU)
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.float32
    assert torch.all(out == 1.0) and X.max() == 255


def test_float_is_used_as_given_and_not_copied():
    X = torch.randn(3, 1, 28, 28)
    Xt, yt = check_batch(X, None, GRAY)
    assert yt is None and to_float_input(Xt, 1, CPU) is X


def test_seed_layout_is_accepted():
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    x = np.transpose(np.repeat(x[:, :, :, np.newaxis], 3, axis=3), (0, 3, 1, 2))
    Xt, _ = check_batch(x, [1, 2, 3, 4], RGB)
    assert torch.equal(Xt, torch.from_numpy(np.ascontiguousarray(x)))


def test_mlp_spec_takes_any_layout_with_the_right_size():
    assert check_batch(np.zeros((2, 1, 28, 28), np.float32), [0, 1], FLAT)[0].shape[1] == 1
    with pytest.raises(ValueError, match="C\\*H\\*W = 2352.*expects 784"):
        check_batch(np.zeros((2, 3, 28, 28), np.float32), None, FLAT)


@pytest.mark.parametrize(
    "X, y, spec, error, message",
    [
        ([[1.0]], None, GRAY, TypeError, "numpy array or torch tensor, got list"),
        (np.zeros((2, 28, 28), np.uint8), None, GRAY, ValueError, "4 dimensions.*to_nchw"),
        (np.zeros((2, 28, 28, 3), np.uint8), None, RGB, ValueError, "channels-last"),
        (np.zeros((2, 28, 28, 1), np.uint8), None, GRAY, ValueError, "channels-last"),
        (np.zeros((2, 3, 28, 28), np.uint8), None, GRAY, ValueError, "3 channels.*expects 1"),
        (np.zeros((0, 1, 28, 28), np.uint8), None, GRAY, ValueError, "empty"),
        (np.zeros((2, 1, 8, 8), np.uint8), None, GRAY, ValueError, "8x8 are too small.*16x16"),
        (np.zeros((2, 1, 28, 28), np.int64), None, GRAY, TypeError, "uint8.*int64"),
        (np.full((2, 1, 28, 28), np.nan), None, GRAY, ValueError, "NaN or inf"),
        (torch.full((2, 1, 28, 28), float("inf")), None, GRAY, ValueError, "NaN or inf"),
        (np.zeros((2, 1, 28, 28)), [0, 1, 2], GRAY, ValueError, "2 samples but y has 3"),
        (np.zeros((2, 1, 28, 28)), [0, 10], GRAY, ValueError, r"\[0, 10\).*0 to 10"),
        (np.zeros((2, 1, 28, 28)), [-1, 0], GRAY, ValueError, r"\[0, 10\).*-1 to 0"),
        (np.zeros((2, 1, 28, 28)), [0.0, 1.0], GRAY, TypeError, "integer class labels"),
        (np.zeros((2, 1, 28, 28)), np.zeros((2, 1), int), GRAY, ValueError, "1-D"),
        (np.zeros((2, 1, 28, 28)), "ab", GRAY, TypeError, "y must be"),
    ],
)
def test_bad_input_says_what_was_expected_and_what_came(X, y, spec, error, message):
    with pytest.raises(error, match=message):
        check_batch(X, y, spec)
