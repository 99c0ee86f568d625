"""Diagonal Fisher: ewclab's batched estimators against the per-sample loop, torch.func
(``vmap(grad)``) and BackPACK, on TestNet, MLP and AlexNet(width=0.25) with 1,000 samples.

*ewclab* is ``fisher_diagonal`` (layer-wise squared sums for Linear/Conv2d); *torch.func* is
the same estimator with ``vmap(grad)`` per-sample gradients (ewclab's fallback for other
layers); *BackPACK* (``backpack-for-pytorch``, optional: its columns stay empty, with a note,
when it is not installed) runs ``SumGradSquared`` / ``DiagGGNExact`` / ``DiagGGNMC`` on an
``nn.Sequential`` copy of the network; *loop* is ``fisher_diagonal_reference`` (one backward
pass per sample, per class for "exact"); *plain* is one ordinary forward+backward pass over
the same samples. The slow candidates are timed on a prefix of the samples and scaled
linearly. Every estimate is checked against ewclab's on the same samples. Targets (issue 3,
MLP and TestNet): every kind >= 10x faster than its loop; "empirical" and "sampled" <= 4x a
plain pass.
"""

from __future__ import annotations

import copy
import os
import sys
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from run_all import cpu_model
from torch import Tensor, nn

from ewclab import fisher as fm
from ewclab import fisher_sums
from ewclab.models import MLP, AlexNet, MaybeMaxPool2d, TestNet

N = 1000  # samples per Fisher
BATCH = 256  # ewclab's default batch size, also used by the plain pass and BackPACK
FUNC_FLOATS = 2**25  # torch.func batches hold at most this many per-sample gradient floats
REPEATS = 2  # full-size runs of ewclab and the plain pass after a small warm-up; best kept
SCALED_BUDGET = 0.5  # seconds: slower candidates run on 8, 32, 128, ... samples until this
THREADS = 1  # torch threads while measuring: CPU time of one thread is what other jobs on a
# shared machine disturb least (wall time there depends on everybody else's load)
SEED = 0
TARGET_LOOP, TARGET_PLAIN = 10.0, 4.0

Fisher = dict[str, Tensor]


def _best_time(fn: Callable[[Tensor, Tensor], object], X: Tensor, y: Tensor) -> float:
    """Shortest CPU time of ``REPEATS`` runs on all samples, after a warm-up on 64 of them."""
    fn(X[:64], y[:64])
    times = []
    for _ in range(REPEATS):
        start = time.process_time()
        fn(X, y)
        times.append(time.process_time() - start)
    return min(times)


def _scaled_time(
    fn: Callable[[Tensor, Tensor], Fisher], X: Tensor, y: Tensor
) -> tuple[float, int, Fisher]:
    """CPU seconds for all N samples, measured on the first n (8, 32, 128, ... until a run
    takes ``SCALED_BUDGET`` or n = N) and scaled linearly; also n and that run's result."""
    n = 8
    while True:
        start = time.process_time()
        result = fn(X[:n], y[:n])
        seconds = time.process_time() - start
        if seconds >= SCALED_BUDGET or n == len(X):
            return seconds * len(X) / n, n, result
        n = min(len(X), 4 * n)


def _models() -> list[tuple[str, nn.Module, Tensor, Tensor]]:
    """(name, model in eval mode on the CPU, X, y): random 28x28 images, 10 classes."""
    out = []
    for name, model in (
        ("TestNet", TestNet(seed=SEED, device="cpu")),
        ("MLP", MLP(seed=SEED, device="cpu")),
        ("AlexNet(width=0.25)", AlexNet(width=0.25, seed=SEED, device="cpu")),
    ):
        g = torch.Generator().manual_seed(SEED)
        channels = 3 if isinstance(model, AlexNet) else 1
        X = torch.rand(N, channels, 28, 28, generator=g)
        out.append((name, model.eval(), X, torch.randint(0, 10, (N,), generator=g)))
    return out


def _uniforms(n: int) -> Tensor:
    """The random numbers "sampled" draws its labels from (the same for ewclab and func)."""
    return torch.rand(n, generator=torch.Generator().manual_seed(SEED))


def _ours(model: nn.Module, X: Tensor, y: Tensor, kind: str) -> Fisher:
    generator = torch.Generator().manual_seed(SEED)
    return fm.fisher_diagonal(model, X, y, kind=kind, batch_size=BATCH, generator=generator)


def _loop(model: nn.Module, X: Tensor, y: Tensor, kind: str) -> Fisher:
    generator = torch.Generator().manual_seed(SEED)
    return fm.fisher_diagonal_reference(model, X, y, kind=kind, generator=generator)


def _plain(model: nn.Module, X: Tensor, y: Tensor) -> None:
    """One ordinary forward + backward pass over the samples, in batches of ``BATCH``."""
    params = [p for p in model.parameters() if p.requires_grad]
    for start in range(0, len(X), BATCH):
        loss = F.cross_entropy(model(X[start : start + BATCH]), y[start : start + BATCH])
        torch.autograd.grad(loss, params)


def _func_batch(model: nn.Module) -> int:
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return max(1, min(BATCH, FUNC_FLOATS // n_params))


def _torch_func(model: nn.Module, X: Tensor, y: Tensor, kind: str) -> Fisher:
    """ewclab's estimator with per-sample gradients from ``torch.func.vmap(grad)``."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    u = _uniforms(len(X)) if kind == "sampled" else None
    labels = y if kind == "empirical" else None
    func = fisher_sums.FuncSums(model, params)
    sums = fm._sum_batches(X, labels, u, kind, _func_batch(model), func)
    return {name: f / len(X) for name, f in sums.items()}


def _sequential(model: nn.Module, X: Tensor) -> nn.Sequential:
    """A copy of ``model`` as one ``nn.Sequential`` of standard layers (what BackPACK's
    second-order extensions need): each auto max-pool becomes what it does on ``X``."""
    model = copy.deepcopy(model)
    pools: dict[nn.Module, bool] = {}

    def record(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        pools[module] = out.shape != inputs[0].shape

    handles = [m.register_forward_hook(record) for m in model.modules()
               if isinstance(m, MaybeMaxPool2d)]
    with torch.no_grad():
        expected = model(X[:8])
    for handle in handles:
        handle.remove()
    if isinstance(model, MLP):
        layers = list(model.net)
    elif isinstance(model, TestNet):
        layers = [*model.features, nn.Flatten(), *model.classifier]
    else:
        layers = [*model.features, model.avgpool, nn.Flatten(), *model.classifier]
    twin = nn.Sequential(*[
        (nn.MaxPool2d(m.kernel_size, m.stride) if pools[m] else nn.Identity())
        if isinstance(m, MaybeMaxPool2d) else m
        for m in layers
    ]).eval()
    with torch.no_grad():
        assert torch.equal(twin(X[:8]), expected), "the Sequential copy computes something else"
    return twin


def _backpack_runner() -> tuple[Callable[..., Fisher] | None, str]:
    """``run(sequential, names, X, y, kind) -> Fisher`` using BackPACK (``names``: the
    original model's parameter names) and BackPACK's version, or None and why not."""
    try:
        import backpack
        from backpack.extensions import DiagGGNExact, DiagGGNMC, SumGradSquared
    except ImportError:
        return None, "not installed"
    extensions = {
        "empirical": (SumGradSquared, "sum_grad_squared"),
        "exact": (DiagGGNExact, "diag_ggn_exact"),
        "sampled": (DiagGGNMC, "diag_ggn_mc"),
    }
    extended: set[int] = set()

    def run(twin: nn.Sequential, names: list[str], X: Tensor, y: Tensor, kind: str) -> Fisher:
        extension, attribute = extensions[kind]
        if id(twin) not in extended:
            extended.add(id(backpack.extend(twin)))
        loss_fn = backpack.extend(nn.CrossEntropyLoss(reduction="sum"))
        sums = [torch.zeros_like(p) for p in twin.parameters()]
        for start in range(0, len(X), BATCH):
            loss = loss_fn(twin(X[start : start + BATCH]), y[start : start + BATCH])
            with backpack.backpack(extension()), warnings.catch_warnings():
                # the first layer's input needs no gradient: harmless for BackPACK
                warnings.filterwarnings("ignore", "Full backward hook is firing")
                loss.backward()
            for s, p in zip(sums, twin.parameters(), strict=True):
                s += getattr(p, attribute)
        twin.zero_grad(set_to_none=True)
        return {name: s / len(X) for name, s in zip(names, sums, strict=True)}

    version = getattr(backpack, "__version__", None)
    if version is None:
        from importlib.metadata import version as package_version

        version = package_version("backpack-for-pytorch")
    return run, version


def _rel_err(a: Fisher | None, b: Fisher) -> float | None:
    """max over parameters of max|a − b| / max|b|."""
    if a is None:
        return None
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in b)


def _try(
    fn: Callable[[Tensor, Tensor], Fisher], X: Tensor, y: Tensor
) -> tuple[float | None, int, Fisher | None, str]:
    """:func:`_scaled_time`, or (None, 0, None, the error) when the candidate fails."""
    try:
        return (*_scaled_time(fn, X, y), "")
    except Exception as error:  # noqa: BLE001 - a candidate that fails is reported, not fatal
        return None, 0, None, f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"


def _ms(seconds: float | None, n: int = N) -> str:
    """Milliseconds, with the number of samples actually timed when it is not N."""
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:,.0f}" + ("" if n == N else f" ({n})")


def _x(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{a / b:.1f}×"


def _err(value: float | None) -> str:
    return "—" if value is None else f"{value:.0e}"


def _machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def _verdict(name: str, kind: str, plain: float, ours: float, loop: float) -> str:
    speedup, cost = loop / ours, ours / plain
    ok = speedup >= TARGET_LOOP and (kind == "exact" or cost <= TARGET_PLAIN)
    text = (f"- {name} / {kind}: {'met' if ok else 'MISSED'}: {speedup:.0f}× faster than the "
            f"per-sample loop (target ≥ {TARGET_LOOP:g}×)")
    if kind != "exact":
        text += f", {cost:.1f}× a plain pass (target ≤ {TARGET_PLAIN:g}×)"
    if speedup < TARGET_LOOP:
        text += (f"; the loop costs only {loop / plain:.0f}× a plain pass here, so "
                 f"{TARGET_LOOP:g}× needs ewclab within {loop / plain / TARGET_LOOP:.2f}× "
                 "of a plain pass")
    return text + "."


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def run() -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _run()
    finally:
        torch.set_num_threads(threads)


def _candidates(model: nn.Module, twin: nn.Sequential, kind: str, backpack_run) -> dict:
    """The slower estimators, each a function (X, y) -> Fisher."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    out = {
        "loop": lambda X, y: _loop(model, X, y, kind),
        "torch.func": lambda X, y: _torch_func(model, X, y, kind),
    }
    if backpack_run is not None:
        out["BackPACK"] = lambda X, y: backpack_run(twin, names, X, y, kind)
    return out


def _run() -> str:
    backpack_run, backpack_version = _backpack_runner()
    load_before = _load()
    rows, verdicts, notes, func_batches, errors = [], [], [], [], []
    for name, model, X, y in _models():
        plain = _best_time(lambda X, y, m=model: _plain(m, X, y), X, y)
        func_batches.append(f"{name} {_func_batch(model)}")
        twin = _sequential(model, X)
        for kind in fm.KINDS:
            ours_t = _best_time(lambda X, y, m=model, k=kind: _ours(m, X, y, k), X, y)
            cells, speeds = {}, {"ewclab": ours_t}
            for label, fn in _candidates(model, twin, kind, backpack_run).items():
                seconds, n, result, error = _try(fn, X, y)
                if error:
                    notes.append(f"- {label} failed on {name} / {kind}: `{error}`")
                # sampled: BackPACK draws its own labels, so only its deterministic kinds agree
                comparable = result is not None and not (label == "BackPACK" and kind == "sampled")
                err = _rel_err(result, _ours(model, X[:n], y[:n], kind)) if comparable else None
                errors += [err] if err is not None else []
                cells[label] = (seconds, n, err)
                if label != "loop" and seconds is not None:
                    speeds[label] = seconds
            (loop_t, loop_n, loop_err), (func_t, func_n, func_err) = (
                cells["loop"], cells["torch.func"])
            bp_t, bp_n, bp_err = cells.get("BackPACK", (None, N, None))
            rows.append(
                f"| {name} | {kind} | {_ms(plain)} | {_ms(ours_t)} | {_ms(func_t, func_n)} "
                f"| {_ms(bp_t, bp_n)} | {_ms(loop_t, loop_n)} | {_x(loop_t, ours_t)} "
                f"| {_x(ours_t, plain)} | {min(speeds, key=speeds.get)} "
                f"| {_err(loop_err)} / {_err(func_err)} / {_err(bp_err)} |"
            )
            if not name.startswith("AlexNet"):
                verdicts.append(_verdict(name, kind, plain, ours_t, loop_t))
        print(f"bench_fisher: {name} done", file=sys.stderr)
    worst = max(errors)
    verdicts.append(
        f"- Agreement: every comparable estimate within {worst:.0e} (max relative error) of "
        f"ewclab's: {'met' if worst <= 1e-5 else 'MISSED'} (≤ 1e-5, as the tests require)."
    )
    if backpack_run is None:
        notes.append("- BackPACK (`pip install backpack-for-pytorch`, optional) is not "
                     "installed: its columns are empty.")
    bp_line = (f"BackPACK {backpack_version}" if backpack_run is not None
               else "BackPACK not installed")
    return "\n".join([
        "## Diagonal Fisher",
        "",
        f"{N} random 28×28 samples, 10 classes, CPU, float32, eval mode; times are CPU "
        f"milliseconds of one torch thread for all {N} samples. *plain* (one ordinary "
        "forward+backward pass) and *ewclab* "
        f"(`fisher_diagonal`): best of {REPEATS} full runs after a warm-up. *torch.func* "
        "(`vmap(grad)`), *BackPACK* and *loop* (`fisher_diagonal_reference`) run on the "
        f"first 8, 32, 128, ... samples until a run takes {SCALED_BUDGET:g} s, scaled "
        f"linearly to {N}; (n) is the number of samples timed when it is not {N}. Batches of "
        f"{BATCH} for ewclab, plain and BackPACK; torch.func batches hold ≤ "
        f"{FUNC_FLOATS:,} per-sample gradient floats ({', '.join(func_batches)} samples). "
        "*fastest*: of ewclab, torch.func and BackPACK. *agreement*: max relative error "
        "against ewclab on the same samples of loop / torch.func (same sampled labels) / "
        "BackPACK (not for sampled: BackPACK draws its own labels).",
        "",
        f"Machine: {_machine()}, {bp_line}. Load average {load_before} before and "
        f"{_load()} after: measured while other jobs shared the CPU (hence CPU time, "
        "one thread), so ratios within a row mean more than absolute times.",
        "",
        "| model | kind | plain | ewclab | torch.func | BackPACK | loop | loop / ewclab "
        "| ewclab / plain | fastest | agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Targets (MLP and TestNet): every kind ≥ {TARGET_LOOP:g}× faster than its loop; "
        f"empirical and sampled ≤ {TARGET_PLAIN:g}× a plain pass.",
        "",
        *verdicts,
        *([""] + notes if notes else []),
    ])


if __name__ == "__main__":
    print(run())
