"""Diagonal Fisher: ewclab's batched estimators against a plain forward+backward pass,
BackPACK, torch.func (``vmap(grad)``) and the per-sample loop, on TestNet, MLP and
AlexNet(width=0.25) with 1,000 samples.

*ewclab* is ``fisher_diagonal`` (layer-wise squared sums for Linear/Conv2d); *plain* is one
ordinary forward+backward pass over the same samples; *BackPACK* (``backpack-for-pytorch``,
optional: its columns stay empty, with a note, when it is not installed) runs
``SumGradSquared`` / ``DiagGGNExact`` / ``DiagGGNMC`` on an ``nn.Sequential`` copy of the
network; *torch.func* is ewclab's estimator with ``vmap(grad)`` per-sample gradients (its
fallback for other layers); *loop* is ``fisher_diagonal_reference`` (one backward pass per
sample, per class for "exact"). plain, ewclab and (for empirical and sampled) BackPACK run
on all samples, in turns, best of several rounds; the slow candidates are timed on a prefix of
the samples and scaled linearly. Every estimate is checked against ewclab's on the same
samples.

Targets (issue 13, section 4), on every model: "empirical" and "sampled" within 1.5x of one
plain pass over the same samples, and no slower than BackPACK where BackPACK runs. "exact"
needs one backward pass per class and has no speed target; the loop is for information.
"""

from __future__ import annotations

import copy
import math
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
REPEATS = 3  # at least this many full-size runs of each candidate timed in turns; best kept
MAX_ROUNDS, ROUNDS_BUDGET = 20, 3.0  # ... more for fast models, until the rounds take 3 s
SCALED_BUDGET = 0.5  # seconds: slower candidates run on 8, 32, 128, ... samples until this
THREADS = 1  # torch threads while measuring: CPU time of one thread is what other jobs on a
# shared machine disturb least (wall time there depends on everybody else's load)
SEED = 0
TARGET_PLAIN = 1.5  # empirical and sampled: at most this many plain passes
TARGET_KINDS = ("empirical", "sampled")  # the kinds with a speed target

Fisher = dict[str, Tensor]


def _in_turns(fns: dict[str, Callable[[Tensor, Tensor], Fisher | None]], X: Tensor,
              y: Tensor) -> tuple[dict[str, float], dict[str, Fisher | None]]:
    """Shortest CPU time of each function on all samples, the functions taking turns within
    a round (a burst of load from other jobs hits them all alike), after a warm-up on 64
    samples: at least ``REPEATS`` rounds, more for fast models (up to ``MAX_ROUNDS``, until
    the rounds take ``ROUNDS_BUDGET`` seconds); and each function's result."""
    for fn in fns.values():
        fn(X[:64], y[:64])
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Fisher | None] = {}
    rounds = REPEATS
    while len(times["plain"]) < rounds:
        for name, fn in fns.items():
            start = time.process_time()
            results[name] = fn(X, y)
            times[name].append(time.process_time() - start)
        if len(times["plain"]) == 1:
            one_round = sum(t[0] for t in times.values())
            rounds = max(REPEATS, min(MAX_ROUNDS, math.ceil(ROUNDS_BUDGET / one_round)))
    return {name: min(t) for name, t in times.items()}, results


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


def _ms(seconds: float | None, n: int | None = None) -> str:
    """Milliseconds, with the number of samples actually timed when it is not N."""
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:,.0f}" + ("" if n in (None, N) else f" ({n})")


def _x(a: float | None, b: float | None, digits: int = 1) -> str:
    return "—" if a is None or b is None else f"{a / b:.{digits}f}×"


def _err(value: float | None) -> str:
    return "—" if value is None else f"{value:.0e}"


def _machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def _phases(model: nn.Module, X: Tensor, y: Tensor, kind: str) -> dict[str, float]:
    """Where the time goes, in CPU seconds over all samples (one run each): ewclab's forward
    passes (with its hooks) and its backward passes with the squared sums, against the plain
    pass's forward and backward."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert fisher_sums.path(model, params, X[:1]) == "per-layer"
    sums = _Stopwatch(fisher_sums.LayerSums(model, fisher_sums.layers(model, params), params))
    u = _uniforms(len(X)) if kind == "sampled" else None
    fm._sum_batches(X, y if kind == "empirical" else None, u, kind, BATCH, sums)
    forward = backward = 0.0
    for start in range(0, len(X), BATCH):
        t0 = time.process_time()
        loss = F.cross_entropy(model(X[start : start + BATCH]), y[start : start + BATCH])
        t1 = time.process_time()
        torch.autograd.grad(loss, list(params.values()))
        forward, backward = forward + t1 - t0, backward + time.process_time() - t1
    return {"forward": sums.forward_s, "backward": sums.add_s,
            "plain forward": forward, "plain backward": backward}


class _Stopwatch:
    """A :class:`fisher_sums.LayerSums` that counts the CPU time of its two steps."""

    def __init__(self, sums: fisher_sums.LayerSums):
        self.sums, self.forward_s, self.add_s = sums, 0.0, 0.0

    @property
    def fisher(self) -> Fisher:
        return self.sums.fisher

    def forward(self, x: Tensor) -> Tensor:
        start = time.process_time()
        log_p = self.sums.forward(x)
        self.forward_s += time.process_time() - start
        return log_p

    def add(self, *args: object) -> None:
        start = time.process_time()
        self.sums.add(*args)
        self.add_s += time.process_time() - start


def _verdict(name: str, kind: str, plain: float, ours: float, backpack: float | None,
             phases: Callable[[], dict[str, float]]) -> str:
    """The target line of one model and kind, computed from the measured times."""
    cost = ours / plain
    ok = cost <= TARGET_PLAIN and (backpack is None or ours <= backpack)
    text = (f"- {name} / {kind}: {'met' if ok else 'MISSED'}: {cost:.2f}× a plain pass "
            f"(target ≤ {TARGET_PLAIN:g}×)")
    if backpack is None:
        text += "; BackPACK did not run, so only the plain target applies"
    else:
        text += f", {ours / backpack:.2f}× BackPACK's time (target ≤ 1×)"
    if not ok:
        ms = {part: f"{seconds * 1e3:,.0f}" for part, seconds in phases().items()}
        text += (f". Where the time goes (CPU ms, all {N} samples, one more run): ewclab's "
                 f"forward passes with their hooks {ms['forward']} (a plain forward "
                 f"{ms['plain forward']}), its backward passes and squared sums "
                 f"{ms['backward']} (a plain backward, weight gradients included, "
                 f"{ms['plain backward']})")
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


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"


def _run() -> str:
    backpack_run, backpack_version = _backpack_runner()
    load_before = _load()
    rows, verdicts, exact, notes, func_batches, errors = [], [], [], [], [], []
    for name, model, X, y in _models():
        func_batches.append(f"{name} {_func_batch(model)}")
        twin = _sequential(model, X)
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        for kind in fm.KINDS:
            in_turns = {
                "plain": lambda X, y, m=model: _plain(m, X, y),
                "ewclab": lambda X, y, m=model, k=kind: _ours(m, X, y, k),
            }
            slow = {
                "loop": lambda X, y, m=model, k=kind: _loop(m, X, y, k),
                "torch.func": lambda X, y, m=model, k=kind: _torch_func(m, X, y, k),
            }
            if backpack_run is not None:
                bp = lambda X, y, k=kind, t=twin, ns=names: backpack_run(t, ns, X, y, k)  # noqa: E731
                try:
                    bp(X[:8], y[:8])
                    (in_turns if kind in TARGET_KINDS else slow)["BackPACK"] = bp
                except Exception as error:  # noqa: BLE001 - reported, not fatal
                    notes.append(f"- BackPACK failed on {name} / {kind}: `{_error(error)}`")
            best, results = _in_turns(in_turns, X, y)
            ours = results["ewclab"]
            cells = {label: (best[label], N, results[label])
                     for label in in_turns if label not in ("plain", "ewclab")}
            for label, fn in slow.items():
                try:
                    cells[label] = _scaled_time(fn, X, y)
                except Exception as error:  # noqa: BLE001 - a candidate that fails is reported
                    notes.append(f"- {label} failed on {name} / {kind}: `{_error(error)}`")
            agreement = {}
            for label, (_, n, result) in cells.items():
                # sampled: BackPACK draws its own labels, so only its deterministic kinds agree
                if label == "BackPACK" and kind == "sampled":
                    continue
                agreement[label] = _rel_err(result, ours if n == N else _ours(model, X[:n], y[:n],
                                                                              kind))
            errors += list(agreement.values())
            seconds = {label: t for label, (t, _, _) in cells.items()} | {"ewclab": best["ewclab"]}
            bp_t = seconds.get("BackPACK")
            rows.append(" | ".join([
                f"| {name}", kind, _ms(best["plain"]), _ms(best["ewclab"]),
                *(_ms(*cells[label][:2]) if label in cells else "—"
                  for label in ("BackPACK", "torch.func", "loop")),
                _x(best["ewclab"], best["plain"], 2), _x(best["ewclab"], bp_t, 2),
                _x(seconds.get("loop"), best["ewclab"]),
                min((k for k in seconds if k != "loop"), key=seconds.get),
                " / ".join(_err(agreement.get(label)) for label in ("loop", "torch.func",
                                                                     "BackPACK")) + " |",
            ]))
            if kind in TARGET_KINDS:
                verdicts.append(_verdict(
                    name, kind, best["plain"], best["ewclab"], bp_t,
                    lambda m=model, k=kind, X=X, y=y: _phases(m, X, y, k)))
            else:
                exact.append(f"{name} {_x(best['ewclab'], best['plain'], 2)}"
                             + ("" if bp_t is None else
                                f" ({_x(bp_t, best['ewclab'])} faster than BackPACK)"))
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
        "forward+backward pass), *ewclab* (`fisher_diagonal`) and, for empirical and "
        f"sampled, *BackPACK* run on all samples in turns after a warm-up, best of "
        f"{REPEATS} to {MAX_ROUNDS} rounds (enough for about {ROUNDS_BUDGET:g} s in all). "
        "*torch.func* (`vmap(grad)`), *loop* (`fisher_diagonal_reference`) and "
        "BackPACK's exact Fisher run on the first 8, 32, 128, ... samples until a run takes "
        f"{SCALED_BUDGET:g} s, scaled linearly to {N}; (n) is the number of samples timed "
        f"when it is not {N}. Batches of {BATCH} for ewclab, plain and BackPACK; torch.func "
        f"batches hold ≤ {FUNC_FLOATS:,} per-sample gradient floats "
        f"({', '.join(func_batches)} samples). *fastest*: of ewclab, torch.func and "
        "BackPACK. *agreement*: max relative error against ewclab on the same samples of "
        "loop / torch.func (same sampled labels) / BackPACK (not for sampled: BackPACK draws "
        "its own labels).",
        "",
        f"Machine: {_machine()}, {bp_line}. Load average {load_before} before and "
        f"{_load()} after: measured while other jobs shared the CPU (hence CPU time, "
        "one thread, candidates in turns), so ratios within a row mean more than absolute "
        "times.",
        "",
        "| model | kind | plain | ewclab | BackPACK | torch.func | loop | ewclab / plain "
        "| ewclab / BackPACK | loop / ewclab | fastest | agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Targets (issue 13, section 4), on every model: empirical and sampled ≤ "
        f"{TARGET_PLAIN:g}× a plain pass over the same samples, and no slower than BackPACK "
        "where BackPACK runs.",
        "",
        *verdicts,
        "- Exact Fisher (no speed target: one backward pass per class), ewclab / plain: "
        + "; ".join(exact) + ".",
        *([""] + notes if notes else []),
    ])


if __name__ == "__main__":
    print(run())
