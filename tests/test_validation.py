"""check_batch / to_float_input: accepted forms, conversions and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ewclab.validation import (
    FLOAT32_MAX,
    InputSpec,
    check_batch,
    check_bool,
    check_int,
    check_option,
    check_real,
    check_seed,
    to_float_input,
)

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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_unsigned_labels_of_every_width_are_checked_and_kept(dtype):
    _, yt = check_batch(np.zeros((3, 1, 28, 28)), np.array([0, 5, 9], dtype), GRAY)
    assert yt.tolist() == [0, 5, 9]
    _, yt = check_batch(np.zeros((3, 1, 28, 28)), torch.from_numpy(np.array([1, 2, 3], dtype)),
                        GRAY)
    assert yt.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"\[0, 10\).*0 to 10"):
        check_batch(np.zeros((2, 1, 28, 28)), np.array([0, 10], dtype), GRAY)


def test_float64_within_float32_range_passes():
    Xt, _ = check_batch(np.full((2, 1, 28, 28), 3e38), None, GRAY)
    assert torch.isfinite(to_float_input(Xt, 1, CPU)).all()


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
        (np.full((2, 1, 28, 28), 1e39), None, GRAY, ValueError, "1e\\+39.*beyond float32"),
        (np.zeros((2, 28, 28, 3), np.float32), None, InputSpec(10, features=2352), ValueError,
         "3-channel channels-last.*transpose"),
        (np.zeros((2, 28, 28, 3), np.float32), None, GRAY, ValueError, "channels-last"),
        (np.zeros((2, 1, 28, 28)), np.array([1, 2**63], np.uint64), GRAY, ValueError,
         "class indices"),
    ],
)
def test_bad_input_says_what_was_expected_and_what_came(X, y, spec, error, message):
    with pytest.raises(error, match=message):
        check_batch(X, y, spec)


# -- the parameter helpers: one rule for the whole package ---------------------------------

@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3), torch.tensor(3).item()])
def test_check_int_takes_python_and_numpy_integers(value):
    out = check_int(value, "n", low=1)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize(
    "value, error, message",
    [
        (True, TypeError, "n must be an int >= 1, got True"),
        (np.bool_(True), TypeError, "n must be an int >= 1, got "),
        (2.0, TypeError, "n must be an int >= 1, got 2.0"),
        (2.5, TypeError, "n must be an int >= 1, got 2.5"),
        ("3", TypeError, "n must be an int >= 1, got '3'"),
        (None, TypeError, "n must be an int >= 1, got None"),
        (0, ValueError, "n must be an int >= 1, got 0"),
        (np.int64(-2), ValueError, "n must be an int >= 1, got -2"),
    ],
)
def test_check_int_refuses_with_type_or_value_error(value, error, message):
    with pytest.raises(error, match="^" + message.replace("(", r"\(")):
        check_int(value, "n", low=1)


def test_check_int_upper_bound():
    assert check_int(5, "k", low=0, high=5) == 5
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 5\], got 6"):
        check_int(6, "k", low=0, high=5)


@pytest.mark.parametrize("value", [0.01, np.float32(0.5), np.float64(1e-3), 1, np.int32(2)])
def test_check_real_takes_python_and_numpy_reals(value):
    out = check_real(value, "lr", low=0, low_open=True)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize(
    "value, error",
    [
        (True, TypeError), ("0.1", TypeError), (1j, TypeError), (None, TypeError),
        (float("nan"), ValueError), (np.float32("nan"), ValueError), (math.inf, ValueError),
        (0.0, ValueError), (-1.0, ValueError), (1e39, ValueError),
    ],
)
def test_check_real_refuses_non_finite_out_of_range_and_non_numbers(value, error):
    with pytest.raises(error, match="^lr must be a finite real number in "):
        check_real(value, "lr", low=0, low_open=True, high=FLOAT32_MAX)


def test_check_real_closed_and_open_bounds_in_the_message():
    assert check_real(0, "momentum", low=0, high=1, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"momentum must be .* in \[0, 1\), got 1"):
        check_real(1, "momentum", low=0, high=1, high_open=True)


def test_check_option():
    assert check_option("sgd", "optimizer", ("sgd", "adam")) == "sgd"
    with pytest.raises(ValueError, match=r"optimizer must be one of \('sgd', 'adam'\), got 'x'"):
        check_option("x", "optimizer", ("sgd", "adam"))
    with pytest.raises(TypeError, match=r"name must be one of .*got \['mnist'\]"):
        check_option(["mnist"], "name", ("mnist",))


def test_check_bool_and_check_seed():
    assert check_bool(np.bool_(True), "shuffle") is True
    with pytest.raises(TypeError, match="shuffle must be True or False, got 1"):
        check_bool(1, "shuffle")
    assert check_seed(None) is None and check_seed(np.int64(7)) == 7
    assert check_seed(2**64 - 1) == 2**64 - 1
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64 - 1\], got 1844"):
        check_seed(2**64)
    with pytest.raises(ValueError, match="got -1"):
        check_seed(-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        check_seed(None, none_ok=False)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1,
                       max_size=6))
def test_float_input_is_accepted_exactly_when_float32_can_hold_it(values):
    X = np.array(values, np.float64).reshape(-1, 1, 1, 1)
    spec = InputSpec(num_classes=2, features=1)
    ok = all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values)
    if ok:
        Xt, _ = check_batch(X, None, spec)
        assert torch.isfinite(to_float_input(Xt, None, CPU)).all()
    else:
        with pytest.raises(ValueError, match="NaN or inf|beyond float32"):
            check_batch(X, None, spec)
