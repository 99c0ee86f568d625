"""The layer-wise fast path (ewclab.fisher_sums) on every layer shape it takes: convolutions
with any stride, padding, dilation, kernel and channel count, linear layers on sequences,
and per-sample gradients split into chunks anywhere, all equal to the per-sample loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ewclab import fisher_sums
from ewclab.fisher import KINDS, fisher_diagonal, fisher_diagonal_reference

TOLERANCE = 1e-5  # max relative error between estimators, as in test_fisher.py


def rel_err(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    assert list(a) == list(b)
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in b)


class ConvNet(nn.Module):
    """One convolution (the case under test), a ReLU, and a linear read-out."""

    def __init__(self, channels: int, size: int, **conv: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, **conv)
        with torch.no_grad():
            features = self.conv(torch.zeros(1, channels, size, size)).numel()
        self.out = nn.Linear(features, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.conv(x)).flatten(1))


CONVS = {  # name: (input channels, image size, nn.Conv2d arguments)
    "1 channel": (1, 9, dict(kernel_size=3)),
    "stride and padding": (3, 11, dict(kernel_size=5, stride=2, padding=2)),
    "uneven": (2, 10, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    "dilation": (2, 12, dict(kernel_size=3, dilation=(2, 3), padding=1)),
    "no bias": (3, 8, dict(kernel_size=3, padding=1, bias=False)),
    "1 channel, strided": (1, 13, dict(kernel_size=4, stride=3, padding=1)),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(CONVS))
def test_every_convolution_shape_agrees_with_the_loop(name: str, kind: str, monkeypatch) -> None:
    channels, size, conv = CONVS[name]
    torch.manual_seed(0)
    model = ConvNet(channels, size, **conv)
    X, y = torch.randn(7, channels, size, size), torch.randint(0, 3, (7,))
    params = dict(model.named_parameters())
    assert fisher_sums.path(model, params, X[:1]) == "per-layer"
    reference = fisher_diagonal_reference(model, X, y, kind=kind,
                                          generator=torch.Generator().manual_seed(1))
    for chunk_floats in (1, 200, 2**19):  # one sample per chunk, a few, the whole batch
        monkeypatch.setattr(fisher_sums, "CHUNK_FLOATS", chunk_floats)
        fast = fisher_diagonal(model, X, y, kind=kind, batch_size=5,
                               generator=torch.Generator().manual_seed(1))
        assert rel_err(fast, reference) <= TOLERANCE, chunk_floats


class SequenceNet(nn.Module):
    """A linear layer applied at every position of a sequence, (N, T, in) -> (N, T, out)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = nn.Linear(5, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.tanh(self.step(x)).mean(1))


@pytest.mark.parametrize("kind", KINDS)
def test_a_linear_layer_on_sequences_agrees_with_the_loop(kind: str, monkeypatch) -> None:
    torch.manual_seed(0)
    model = SequenceNet()
    X, y = torch.randn(9, 4, 5), torch.randint(0, 3, (9,))
    reference = fisher_diagonal_reference(model, X, y, kind=kind,
                                          generator=torch.Generator().manual_seed(1))
    for chunk_floats in (1, 2**19):
        monkeypatch.setattr(fisher_sums, "CHUNK_FLOATS", chunk_floats)
        fast = fisher_diagonal(model, X, y, kind=kind, batch_size=4,
                               generator=torch.Generator().manual_seed(1))
        assert rel_err(fast, reference) <= TOLERANCE


def test_windows_are_what_unfold_gives() -> None:
    torch.manual_seed(0)
    for channels, size, conv in CONVS.values():
        layer = nn.Conv2d(channels, 4, **conv)
        a = torch.randn(3, channels, size, size)
        windows = fisher_sums.Windows(layer, a)(slice(0, 3))  # (n, positions, kh·kw·in)
        unfold = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        kh, kw = layer.kernel_size
        # F.unfold orders a window (in, kh, kw); Windows orders it (kh, kw, in)
        expected = unfold.view(3, channels, kh, kw, -1).permute(0, 4, 2, 3, 1).flatten(2)
        assert torch.equal(windows, expected)


def test_accumulators_keep_the_input_as_the_layer_saw_it() -> None:
    """A later in-place operation on a layer's input (say ``x.relu_()``) changes nothing."""
    torch.manual_seed(0)
    conv, dense = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(4, 2)
    cases = [  # (accumulator, layer, its input, an output gradient)
        (fisher_sums.SharedSquares, conv, torch.randn(5, 2, 6, 6), torch.randn(5, 3, 6, 6)),
        (fisher_sums.SharedSquares, dense, torch.randn(5, 3, 4), torch.randn(5, 3, 2)),
        (fisher_sums.DenseSquares, dense, torch.randn(5, 4), torch.randn(5, 2)),
    ]
    for accumulator, layer, a, g in cases:
        expected = accumulator(layer, a.clone())
        acc = accumulator(layer, a)
        a.relu_()
        for each in (acc, expected):
            each.add(g)
        for value, want in zip(acc.result(), expected.result(), strict=True):
            assert torch.equal(value, want) and float(want.sum()) > 0
