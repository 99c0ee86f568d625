"""The seed's usage (shared/seed/models-readme.md) runs as written on bundled MNIST.

Only the imports differ: keras' ``mnist.load_data()`` becomes ``load_task("mnist")``, and
``alexnet`` / ``testnet`` are ``ewclab.models``. EPOCHS and the batch size are small so
that the width-1.0 AlexNet stays quick on a CPU.
"""

from __future__ import annotations

import numpy
import torch

import ewclab.models as alexnet
import ewclab.models as testnet
from ewclab.data import batchify, load_task


def test_seed_training_script_runs_verbatim():
    mnist = load_task("mnist")
    EPOCHS = 2

    (train_x, train_y), (test_x, test_y) = (  # noqa: F841 - the seed's line
        (mnist.x_train, mnist.y_train), (mnist.x_test, mnist.y_test))
    model = alexnet.AlexNet(num_classes=10)
    batch_generator = batchify(train_x, train_y, batch_size=16)

    for i in range(EPOCHS):  # noqa: B007 - the seed's loop
        train_x, train_y = next(batch_generator)
        # Convert input in the give format (batch,channel,H,W)
        train_x = numpy.repeat(train_x[:, :, :, numpy.newaxis], 3, axis=3)
        train_x = numpy.transpose(train_x, (0, 3, 1, 2))
        model.partial_fit(train_x, train_y)

    assert model.ewc_lambda > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.predict(numpy.transpose(numpy.repeat(test_x[:4, :, :, None], 3, axis=3),
                                         (0, 3, 1, 2))).shape == (4,)


def test_seed_ewc_flow_train_a_consolidate_train_b():
    """train on MNIST, ``consolidate(x, y)`` with stored samples, train on Fashion-MNIST:
    the EWC penalty then pulls towards the task-A weights (the seed's ``demo.py --ewc``)."""
    mnist, fashion = load_task("mnist"), load_task("fashion-mnist")
    model = testnet.TestNet(10, seed=0)

    def train_on_task(name, batches, steps=12):
        for _ in range(steps):
            x, y = next(batches)
            model.buffer.add(name, x[:, None], y)
            model.partial_fit(x[:, None], y)

    train_on_task("MNIST", batchify(mnist.x_train, mnist.y_train, batch_size=64))
    taskA_sample_x, taskA_sample_y = model.buffer.get("MNIST")
    model.consolidate(taskA_sample_x, taskA_sample_y)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_on_task("FASHION", batchify(fashion.x_train, fashion.y_train, batch_size=64))

    assert model.buffer.tasks == ["MNIST", "FASHION"]
    assert len(model.ewc.tasks) == 1
    moved = {n: p.detach() - anchor[n] for n, p in model.named_parameters()}
    assert sum(float(d.abs().sum()) for d in moved.values()) > 0
    assert model.ewc.penalty().item() > 0
