"""The networks: AlexNet, TestNet (a small convolutional network for quick demos) and the
MLP of the EWC paper's permuted-MNIST experiments.

Each is a :class:`~ewclab.learner.Learner`, so each has ``partial_fit``, ``fit``,
``predict``, ``score``, ``consolidate``, ``save`` / ``load``; the keyword arguments after
the architecture ones (``ewc_lambda``, ``optimizer``, ``lr``, ``seed``, ...) are the
learner's, documented there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from ewclab.learner import Learner
from ewclab.validation import InputSpec, check_int, check_option, check_real

POOL_MODES = ("auto", "always", "never")


class MaybeMaxPool2d(nn.MaxPool2d):
    """Max-pooling that can skip itself.

    ``mode="auto"`` pools only when the pooled map is still at least ``min_out`` wide
    and high, so small inputs (28×28 MNIST) keep their spatial detail instead of
    shrinking to a few pixels; the decision is taken on every forward from the incoming
    size. "always" and "never" do what they say.
    """

    def __init__(self, kernel_size: int, stride: int, mode: str = "auto", min_out: int = 1):
        super().__init__(kernel_size, stride)
        self.mode = mode
        self.min_out = min_out

    def forward(self, x: Tensor) -> Tensor:
        pooled = (min(x.shape[-2:]) - self.kernel_size) // self.stride + 1
        if self.mode == "never" or (self.mode == "auto" and pooled < self.min_out):
            return x
        return super().forward(x)


def he_init(module: nn.Module) -> None:
    """He (Kaiming) normal initialisation of every conv and linear layer; biases zero.

    Draws W ~ N(0, 2 / fan_in), the variance that keeps the second moment of the
    activations constant through ReLU layers (He et al., ICCV 2015, eq. 10).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class AlexNet(Learner):
    """AlexNet (Krizhevsky et al. 2012, torchvision's layout): 5 conv + 3 fully connected.

    Conv(11, stride 4) → pool → Conv(5) → pool → Conv(3) ×3 → pool → adaptive average
    pool to 6×6 → Dropout, FC, Dropout, FC, FC. The adaptive pool keeps the FC sizes
    fixed, so one network takes 28×28, 32×32 or 224×224 images (anything ≥ 7×7).

    Parameters
    ----------
    num_classes : int, default 10
    in_channels : int, default 3
        1-channel input is repeated to 3 automatically.
    width : float, default 1.0
        Scales every channel and hidden size (64, 192, 384, 256, 256 / 4096 at 1.0).
    pool : {"auto", "always", "never"}, default "auto"
        "auto" applies each max-pool only where the pooled map is still at least 6×6.
    dropout : float, default 0.5
    **options
        Learner options (``ewc_lambda``, ``optimizer``, ``lr``, ``seed``, ``device``, ...).

    Notes
    -----
    Parameter counts (independent of the input size, measured, 10 classes, 3 channels):
    57,044,810 at ``width=1.0`` and 3,579,098 at ``width=0.25``.

    Two choices make the plain loop (batches of 64, one ``partial_fit`` each, SGD lr 0.01,
    momentum 0.9) learn MNIST at the defaults; both were found by measurement
    (benchmarks/RESULTS.md, "AlexNet and TestNet at their defaults"):

    - **He initialisation** (:func:`he_init`). PyTorch's default draws weights with
      variance 1 / (3 fan_in), a sixth of the 2 / fan_in that keeps a ReLU layer's output
      as large as its input. Through eight layers without normalisation the logits
      shrink to a standard deviation of ~0.02 and the first layer's gradient to ~1/1000
      of its He-initialised size, and SGD sat at loss ln 10 (10 % accuracy): for 300
      steps at lr 0.01, with or without dropout, and for 100 steps at lr 0.1.
    - **Pooling that keeps a 6×6 map.** conv1 turns 28×28 MNIST into 6×6; pooling that
      to 2×2 and letting the adaptive pool copy it back up to 6×6 capped width 0.25 at
      ~89 % after 300 steps, against ~94 % without the pools (the first MNIST version
      of this model had them commented out too). 224×224 images still take all three pools
      (55 → 27 → 13 → 6), torchvision's layout.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        pool: str = "auto",
        dropout: float = 0.5,
        **options: Any,
    ):
        arch = dict(
            num_classes=check_int(num_classes, "num_classes", low=1),
            in_channels=check_int(in_channels, "in_channels", low=1),
            width=check_real(width, "width", low=0, low_open=True),
            pool=check_option(pool, "pool", POOL_MODES),
            dropout=check_real(dropout, "dropout", low=0, high=1),
        )
        super().__init__(arch, **options)

    def build(
        self, num_classes: int, in_channels: int, width: float, pool: str, dropout: float
    ) -> InputSpec:
        c1, c2, c3, c4, c5, hidden = (max(1, round(n * width)) for n in
                                      (64, 192, 384, 256, 256, 4096))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            MaybeMaxPool2d(3, 2, pool, min_out=6),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(),
            MaybeMaxPool2d(3, 2, pool, min_out=6),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(),
            MaybeMaxPool2d(3, 2, pool, min_out=6),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c5 * 6 * 6, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        # conv1 (11, stride 4, pad 2) needs 7x7; three 3x3 pools in a row need 63x63
        min_size = 63 if pool == "always" else 7
        he_init(self)
        return InputSpec(num_classes=num_classes, channels=in_channels, min_size=min_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class TestNet(Learner):
    """A small demo network: 2 conv + 2 FC, fast on a CPU.

    Conv(5×5, 10) → max-pool 2 → ReLU → Conv(5×5, 20) → max-pool 2 → ReLU → FC 320→50 →
    ReLU → Dropout(0.5) → FC 50→classes. Made for 28×28 images (an adaptive pool lets it
    take anything ≥ 16×16). 21,840 parameters for 1 channel and 10 classes.

    Parameters
    ----------
    num_classes : int, default 10
    in_channels : int, default 1
    width : float, default 1.0
        Scales the channels and the hidden layer: 10w, 20w and 50w (each rounded, at
        least 1). 1.0 is the network above.
    **options
        Learner options (``ewc_lambda``, ``optimizer``, ``lr``, ``seed``, ``device``, ...).
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0, **options: Any
    ):
        arch = dict(
            num_classes=check_int(num_classes, "num_classes", low=1),
            in_channels=check_int(in_channels, "in_channels", low=1),
            width=check_real(width, "width", low=0, low_open=True),
        )
        super().__init__(arch, **options)

    def build(self, num_classes: int, in_channels: int, width: float = 1.0) -> InputSpec:
        c1, c2, hidden = (max(1, round(n * width)) for n in (10, 20, 50))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((4, 4)),
        )
        self.classifier = nn.Sequential(
            nn.Linear(c2 * 4 * 4, hidden),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(hidden, num_classes),
        )
        return InputSpec(num_classes=num_classes, channels=in_channels, min_size=16)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class MLP(Learner):
    """Fully connected ReLU network, the EWC paper's permuted-MNIST model.

    Takes (N, C, H, W) input with ``C * H * W == in_features`` and flattens it.

    Parameters
    ----------
    num_classes : int, default 10
    in_features : int, default 784
    hidden : sequence of int, default (400, 400)
        Sizes of the hidden layers.
    **options
        Learner options (``ewc_lambda``, ``optimizer``, ``lr``, ``seed``, ``device``, ...).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_features: int = 784,
        hidden: Sequence[int] = (400, 400),
        **options: Any,
    ):
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (Sequence, np.ndarray)):
            raise TypeError(f"hidden must be a sequence of layer sizes, got {hidden!r}")
        arch = dict(
            num_classes=check_int(num_classes, "num_classes", low=1),
            in_features=check_int(in_features, "in_features", low=1),
            hidden=tuple(check_int(h, f"hidden[{i}]", low=1) for i, h in enumerate(hidden)),
        )
        super().__init__(arch, **options)

    def build(self, num_classes: int, in_features: int, hidden: tuple[int, ...]) -> InputSpec:
        sizes = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.net = nn.Sequential(*layers)
        return InputSpec(num_classes=num_classes, features=in_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
