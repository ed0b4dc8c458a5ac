"""Model-based generation scores with their noise: TimeGAN's post-hoc discriminative score and TSTR.

Why: a single seed of a real-vs-synthetic classifier moves by 0.03-0.06 from seed to seed, which is the size of
the differences between generators; so every score here is the mean and standard deviation over seeds, and
the predictive score trains on the SAME number of synthetic and real windows (otherwise sample size, not data
quality, decides it).

Protocol (Yoon et al., "Time-series Generative Adversarial Networks", NeurIPS 2019, as used by TSGBench): a
small neural classifier is trained to tell real from synthetic windows on 80% of each set and scored
|accuracy - 0.5| on the held-out 20%; 0 = indistinguishable, 0.5 = always told apart. One change: the held-out
20% is a contiguous block of rows and training rows sharing values with it are dropped, because windows cut at
stride 1 overlap and a random split leaks them (see :func:`_block_split`). TimeGAN uses a GRU; a
small 1-D CNN is used here because a training step costs about half a GRU(8)'s on CPU (measured: 14.5 vs 29.5 ms
for a batch of 128 windows of 64 steps) and the report runs it 7 generators x 2 series x 5 seeds. Everything is
seeded and runs on CPU in ONE torch thread (restored afterwards): tiny nets gain nothing from more threads, a
busy machine makes thread synchronisation very slow, and a fixed thread count makes the float reductions, so
the numbers, the same for the same inputs and seed on any machine with the same torch build.

Speed: the nets of one report (every seed of every generator) are trained together, a few at a time, as ONE
grouped model (``Conv1d(groups=G)``): each net keeps its own weights (initialised exactly as when trained alone),
its own minibatch rows (its own seeded rng) and its own Adam state, and a summed loss gives every net exactly its
own gradient. The numbers are those of the one-net-at-a-time loop up to float rounding (a grouped convolution
sums in another order); ``grouped=False`` runs that loop, and the tests compare the two. The groups (an even
number, set by the number of nets only) are trained in parallel threads, one per core, each with the one torch
thread: the report used one core of two before; which thread trains a group does not change its numbers.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from wavefin_core.errors import ConfigError, DataError

__all__ = ["posthoc_discriminative_score", "posthoc_discriminative_scores", "tstr_predictive_score",
           "tstr_predictive_scores", "GROUP_SIZE", "available_cores"]

#: Nets trained together in one grouped model. Per net and optimizer step, on 2 loaded cores with one torch
#: thread (the same step as bench/bench_generation_report.py --micro): 5 at once 0.64x the time of one at a
#: time, 10 at once 0.69x, 35 at once 1.03x (their activations no longer fit in the cache). Larger sets are
#: split evenly into groups of at most this many.
GROUP_SIZE = 8
_GROUP_MULTIPLE = 2  # the nets are split into a multiple of this many groups: two cores, two groups at a time
_EVAL_ROWS = 512  # rows per grouped forward pass when scoring: bounds the activations of a long test set


def _windows(x: Any, name: str, min_rows: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < min_rows or arr.shape[1] < 8:
        raise DataError(f"`{name}` must be a 2-D array (n_windows >= {min_rows}, window_length >= 8); got shape "
                        f"{arr.shape}. Pass more windows, one per row.")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"`{name}` contains NaN/inf; drop or fill those windows before scoring.")
    return arr


def _seed_list(seeds: int) -> list[int]:
    if int(seeds) < 1:
        raise ConfigError(f"`seeds` must be >= 1 (the number of seeds to average over); got {seeds}.")
    return list(range(int(seeds)))




def _summary(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


# ------------------------------------------------------------------------------------------ discriminative
def _train_seeded(build: Any, x: Any, y: Any, loss_fn: Any, seed: int, rng: np.random.Generator, steps: int,
                  batch_size: int, lr: float) -> Any:
    """Build a net and fit it with Adam on random minibatches; both scores train this way.

    Weight init uses ``torch.manual_seed(seed)`` inside a forked RNG (the caller's torch RNG state is left as it
    was), minibatch rows come from ``rng``: the same seed gives the same net on the same machine and threads.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(steps):
            idx = torch.as_tensor(rng.integers(0, x.shape[0], size=min(batch_size, x.shape[0])))
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def _classifier(channels: int) -> Any:
    import torch
    from torch import nn

    class _WindowCNN(nn.Module):
        """Two conv layers (kernel 5, the second dilated 2: receptive field 13 steps), then per-channel mean, max
        and std over time (level, tails, and how the local level varies inside the window: volatility
        clustering), then a linear logit."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
                nn.Conv1d(channels, channels, 5, padding=4, dilation=2), nn.ReLU(),
            )
            self.head = nn.Linear(3 * channels, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x.unsqueeze(1))
            mean = h.mean(dim=2)
            # std from the first two moments: Tensor.std was 17% of a CPU training step when profiled
            spread = ((h * h).mean(dim=2) - mean * mean).clamp_min(1e-12).sqrt()
            pooled = torch.cat([mean, h.amax(dim=2), spread], dim=1)
            return self.head(pooled).squeeze(1)

    return _WindowCNN()


def _block_split(w: np.ndarray, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Held-out rows = one contiguous block of ``n_test`` rows at a seeded position (rows are in time order);
    training rows = the others, minus every row that shares an exact value with a held-out row.

    Why: real windows cut at stride 1 share 63 of 64 values with their neighbours, and a classifier memorises
    specific values (a crash day sits in 64 windows), so a random split lets it recognise held-out windows it
    has effectively seen: i.i.d. Student-t windows at stride 1 scored 0.49 against an independent copy of
    themselves with a random split. The purge makes held-out windows new to the classifier. It must leave at
    least a quarter of the other rows. Long windows over a short period (the full profile's sp500: 499 test
    windows of 256) cannot afford a block in the middle, whose purge reaches T - 1 rows on both sides; the block
    then moves to the nearer end of the rows that keeps the purge (it reaches one side only). If no position
    does (windows that replay the same values all over, e.g. a block bootstrap), the purge is skipped at the
    seeded position and the count of shared rows is reported instead.
    Returns (train rows, held-out rows, number of training rows left sharing values with held-out rows).
    """
    seeded = int(rng.integers(0, w.shape[0] - n_test + 1))
    ends = sorted((0, w.shape[0] - n_test), key=lambda end: abs(end - seeded))
    fallback = None
    for start in dict.fromkeys((seeded, *ends)):
        test = np.arange(start, start + n_test)
        rest = np.r_[np.arange(start), np.arange(start + n_test, w.shape[0])]
        shares = np.isin(w[rest], np.unique(w[test])).any(axis=1)
        if rest.size - int(shares.sum()) >= max(2, rest.size // 4):
            return rest[~shares], test, 0
        fallback = fallback or (rest, test, int(shares.sum()))
    return fallback


# ------------------------------------------------------------------------------------------ grouped training
@dataclass
class _Fit:
    """One net to train and apply: float32 inputs ``x`` (n, T) and targets ``y`` ((n,) labels or (n, T) values),
    the seed of its initial weights, the rng of its minibatch rows, and the inputs ``x_eval`` it is applied to."""

    x: np.ndarray
    y: np.ndarray
    seed: int
    rng: np.random.Generator
    x_eval: np.ndarray


_BUILDERS = {"classifier": lambda channels: _classifier(channels), "predictor": lambda channels: _predictor(channels)}


def _loss_fn(kind: str) -> Any:
    import torch.nn.functional as F

    if kind == "classifier":
        return F.binary_cross_entropy_with_logits
    return lambda out, y: (out - y).abs().mean()


def _grouped_forward(kind: str, params: list[Any], x: Any, groups: int, channels: int) -> Any:
    """The ``groups`` nets of :func:`_classifier` / :func:`_predictor` at once on ``x`` (B, groups, T): net g
    reads channel g and owns the g-th block of every stacked parameter. Returns (B, groups) logits or
    (B, groups, T) predictions."""
    import torch
    import torch.nn.functional as F

    w1, b1, w2, b2, w3, b3 = params
    if kind == "classifier":
        h = F.relu(F.conv1d(x, w1, b1, padding=2, groups=groups))
        h = F.relu(F.conv1d(h, w2, b2, padding=4, dilation=2, groups=groups))
        mean = h.mean(dim=2)
        spread = ((h * h).mean(dim=2) - mean * mean).clamp_min(1e-12).sqrt()  # as _WindowCNN.forward
        per_net = (x.shape[0], groups, channels)
        pooled = torch.cat([mean.view(per_net), h.amax(dim=2).view(per_net), spread.view(per_net)], dim=2)
        return torch.einsum("bgc,gc->bg", pooled, w3) + b3
    h = F.relu(F.conv1d(F.pad(x, (3, 0)), w1, b1, groups=groups))
    h = F.relu(F.conv1d(F.pad(h, (6, 0)), w2, b2, dilation=2, groups=groups))
    return F.conv1d(h, w3, b3, groups=groups)


def _initial_params(kind: str, fits: list[_Fit], channels: int) -> list[Any]:
    """The stacked parameters of one group: each net built alone from ``torch.manual_seed(seed)`` in a forked RNG
    (exactly the weights :func:`_train_seeded` starts from), block g of every parameter = net g's. Runs in the
    calling thread: torch's RNG is process-wide."""
    import torch

    nets = []
    for fit in fits:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(fit.seed)
            nets.append(_BUILDERS[kind](channels))
    return [torch.cat([p.detach() for p in same]).requires_grad_()
            for same in zip(*(list(net.parameters()) for net in nets), strict=True)]


def _train_group(kind: str, fits: list[_Fit], params: list[Any], steps: int, batch_size: int, channels: int,
                 lr: float) -> list[np.ndarray]:
    """Train ``fits`` together as one grouped model from ``params`` (:func:`_initial_params`) and return each
    net's outputs on its ``x_eval``.

    Same as :func:`_train_seeded` per net: ``steps`` Adam steps, minibatch rows drawn from the net's own ``rng``
    in the same order, loss = the net's own mean loss. Adam is elementwise and the summed loss gives each net
    only its own gradient, so every net follows its own trajectory, up to float rounding.
    """
    import torch

    groups = len(fits)
    opt = torch.optim.Adam(params, lr=lr)
    xs = [torch.as_tensor(fit.x) for fit in fits]
    ys = [torch.as_tensor(fit.y) for fit in fits]
    sizes = [min(batch_size, fit.x.shape[0]) for fit in fits]
    width = max(sizes)
    # Nets with fewer training rows than the batch (tiny inputs) get padded rows that carry no loss.
    mask = torch.as_tensor(np.arange(width)[:, None] < np.asarray(sizes)[None, :], dtype=torch.float32)
    weight = mask / torch.as_tensor(sizes, dtype=torch.float32)
    equal = len(set(sizes)) == 1
    for _ in range(steps):
        rows = [torch.as_tensor(fit.rng.integers(0, fit.x.shape[0], size=size)) for fit, size in zip(fits, sizes, strict=True)]
        if not equal:
            rows = [torch.cat([r, r.new_zeros(width - r.numel())]) for r in rows]
        xb = torch.stack([x[r] for x, r in zip(xs, rows, strict=True)], dim=1)
        yb = torch.stack([y[r] for y, r in zip(ys, rows, strict=True)], dim=1)
        out = _grouped_forward(kind, params, xb, groups, channels)
        if kind == "classifier":
            per_row = torch.nn.functional.binary_cross_entropy_with_logits(out, yb, reduction="none")
        else:
            per_row = (out - yb).abs().mean(dim=2)  # equal steps per row: the mean over rows and steps
        loss = per_row.mean(dim=0).sum() if equal else (per_row * weight).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    outputs: list[list[np.ndarray]] = [[] for _ in fits]
    longest = max(fit.x_eval.shape[0] for fit in fits)
    with torch.no_grad():
        for start in range(0, longest, _EVAL_ROWS):
            parts = [torch.as_tensor(fit.x_eval[start:start + _EVAL_ROWS]) for fit in fits]
            rows = max(p.shape[0] for p in parts)
            xb = torch.stack([torch.nn.functional.pad(p, (0, 0, 0, rows - p.shape[0])) for p in parts], dim=1)
            out = _grouped_forward(kind, params, xb, groups, channels)
            for g, p in enumerate(parts):
                outputs[g].append(out[: p.shape[0], g].numpy())
    return [np.concatenate(o) for o in outputs]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _train_all(kind: str, fits: list[_Fit], steps: int, batch_size: int, channels: int, lr: float,
               grouped: bool, workers: int | None) -> list[np.ndarray]:
    """Every fit's outputs on its ``x_eval``.

    ``grouped``: the fits are split evenly into an even number of groups of at most :data:`GROUP_SIZE` nets,
    each trained as one grouped model, ``workers`` groups at a time in threads (None: one per available core). Each thread runs one torch thread (the caller's ``cpu_threads(.., 1)``) and torch
    releases the GIL inside its kernels, so two groups use two cores; a group's numbers do not depend on which
    thread or how many ran it. ``grouped=False``: one net at a time through :func:`_train_seeded` (the
    reference the tests compare with).
    """
    import torch

    if not grouped:
        out = []
        for fit in fits:
            net = _train_seeded(lambda: _BUILDERS[kind](channels), torch.as_tensor(fit.x), torch.as_tensor(fit.y),
                                _loss_fn(kind), fit.seed, fit.rng, steps, batch_size, lr)
            with torch.no_grad():
                out.append(net(torch.as_tensor(fit.x_eval)).numpy())
        return out
    workers = available_cores() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"`workers` must be >= 1 (threads training the score networks); got {workers}.")
    # An even number of groups (2 cores idle less), never more than the nets; the grouping depends on the
    # number of nets only, not on the machine, so the numbers do not either.
    n_groups = min(len(fits), -(-len(fits) // (GROUP_SIZE * _GROUP_MULTIPLE)) * _GROUP_MULTIPLE)
    chunks = [[fits[i] for i in chunk] for chunk in np.array_split(np.arange(len(fits)), n_groups)]
    params = [_initial_params(kind, chunk, channels) for chunk in chunks]  # torch's RNG: in this thread
    jobs = list(zip(chunks, params, strict=True))
    if workers == 1 or len(jobs) == 1:
        results = [_train_group(kind, chunk, p, steps, batch_size, channels, lr) for chunk, p in jobs]
    else:
        from concurrent.futures import ThreadPoolExecutor

        threads = torch.get_num_threads()

        def run(job: tuple[list[_Fit], list[Any]]) -> list[np.ndarray]:
            torch.set_num_threads(threads)  # the caller's intra-op setting, in this thread too
            return _train_group(kind, job[0], job[1], steps, batch_size, channels, lr)

        with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="wavefin-score") as pool:
            results = list(pool.map(run, jobs))
    return [out for result in results for out in result]


def _discriminative_fit(r: np.ndarray, s: np.ndarray, seed: int, train_fraction: float,
                        scale: str) -> tuple[_Fit, np.ndarray, int, int]:
    """Seed ``seed``'s data: (the classifier's fit, held-out labels, training rows per class, shared rows)."""
    rng = np.random.default_rng(seed)
    m = min(r.shape[0], s.shape[0])  # equal classes: chance is exactly 50%
    r = r[np.sort(rng.choice(r.shape[0], m, replace=False))]  # sorted: keeps the time order of the rows
    s = s[np.sort(rng.choice(s.shape[0], m, replace=False))]
    n_test = m - int(round(m * train_fraction))
    r_tr, r_te, r_shared = _block_split(r, n_test, rng)
    s_tr, s_te, s_shared = _block_split(s, n_test, rng)
    n_train = min(r_tr.size, s_tr.size)  # equal training classes too
    r_tr = np.sort(rng.choice(r_tr, n_train, replace=False))
    s_tr = np.sort(rng.choice(s_tr, n_train, replace=False))
    x_tr = np.vstack([r[r_tr], s[s_tr]])
    y_tr = np.r_[np.ones(n_train), np.zeros(n_train)]
    x_te = np.vstack([r[r_te], s[s_te]])
    y_te = np.r_[np.ones(n_test), np.zeros(n_test)]
    if scale == "per_window":  # each window over its own std: only the shape inside a window is left to judge
        x_tr = x_tr / np.maximum(x_tr.std(axis=1, keepdims=True), 1e-12)
        x_te = x_te / np.maximum(x_te.std(axis=1, keepdims=True), 1e-12)
    else:  # one common scale from the training part: the net sees ~unit values, and every level difference
        common = float(x_tr.std()) or 1.0
        x_tr, x_te = x_tr / common, x_te / common
    # the rng goes on to draw this seed's minibatch rows (after the split, as when each seed ran alone)
    fit = _Fit(x_tr.astype(np.float32), y_tr.astype(np.float32), seed, rng, x_te.astype(np.float32))
    return fit, y_te, n_train, r_shared + s_shared


def posthoc_discriminative_score(real: Any, synth: Any, seeds: int = 5, *, train_fraction: float = 0.8,
                                 steps: int = 100, batch_size: int = 128, channels: int = 16,
                                 lr: float = 1e-2, scale: Literal["global", "per_window"] = "global",
                                 grouped: bool = True, workers: int | None = None) -> dict[str, Any]:
    """TimeGAN's discriminative score, |held-out accuracy - 0.5| of a post-hoc classifier, over ``seeds`` seeds.

    Per seed s (0..seeds-1): the larger set is subsampled (keeping row order) to the smaller one's size; from
    each set a contiguous block of rows at a seeded position is held out (1 - ``train_fraction``; TimeGAN:
    80/20) and the training rows sharing a value with it are dropped (see :func:`_block_split`: overlapping
    stride-1 windows otherwise let the classifier recognise held-out windows); a small 1-D CNN (see
    :func:`_classifier`) is trained for ``steps`` Adam steps on mini-batches of equal-size training classes;
    the score is |accuracy - 0.5| on the held-out windows. Pass rows in time order (as cut from the series).

    ``scale="global"`` divides everything by the training part's std (units do not matter, levels do);
    ``"per_window"`` divides each window by its own std, so only the shape inside a window (tails, clustering,
    dependence) is judged and a volatility-level shift between periods is not.

    ``grouped`` (default) trains the seeds' nets together (see the module docstring); False trains them one by
    one (the same numbers up to float rounding, slower). ``workers``: threads training the groups (None: one
    per available core; the numbers do not depend on it). To score several generators against the same real
    windows, :func:`posthoc_discriminative_scores` groups all their nets.

    Returns ``{"mean", "std" (ddof 1; 0 for one seed), "seeds" (int), "values" (list, one per seed),
    "n_test" (held-out windows per seed, both classes), "n_train" (training windows, both classes, smallest
    over seeds), "n_train_sharing_values" (training rows that shared values with held-out rows but could not
    be dropped, largest over seeds; > 0 means the score is an upper bound)}``. Noise: n_test held-out windows
    give a standard deviation of about 0.5 / sqrt(n_test) when they are independent; a block of stride-1
    windows holds only ~(n_test / 2 + T) distinct values, so expect much more spread, and quote the std.
    Compare generators with the real-vs-real floor, not with 0.
    """
    return posthoc_discriminative_scores(real, {"synth": synth}, seeds, train_fraction=train_fraction, steps=steps,
                                         batch_size=batch_size, channels=channels, lr=lr, scale=scale,
                                         grouped=grouped, workers=workers)["synth"]


def posthoc_discriminative_scores(real: Any, synths: dict[str, Any], seeds: int = 5, *,
                                  train_fraction: float = 0.8, steps: int = 100, batch_size: int = 128,
                                  channels: int = 16, lr: float = 1e-2,
                                  scale: Literal["global", "per_window"] = "global",
                                  grouped: bool = True, workers: int | None = None) -> dict[str, dict[str, Any]]:
    """:func:`posthoc_discriminative_score` of every ``synths[name]`` against the same ``real`` windows, with the
    nets of all generators and seeds trained together in groups (``{name: result}``, the same numbers as one
    call per generator up to float rounding)."""
    r = _windows(real, "real", min_rows=10)
    sets = {name: _windows(w, "synth" if len(synths) == 1 else f"synth[{name!r}]", min_rows=10)
            for name, w in synths.items()}
    for name, s in sets.items():
        if r.shape[1] != s.shape[1]:
            raise DataError(f"real windows have length {r.shape[1]} but synthetic ones ({name}) {s.shape[1]}; "
                            "generate windows of the same `window_length`.")
    if not 0 < train_fraction < 1:
        raise ConfigError(f"`train_fraction` must be in (0, 1); got {train_fraction}.")
    if scale not in ("global", "per_window"):
        raise ConfigError(f"`scale` must be 'global' or 'per_window'; got {scale!r}.")
    seed_list = _seed_list(seeds)
    prepared = {name: [_discriminative_fit(r, s, seed, train_fraction, scale) for seed in seed_list]
                for name, s in sets.items()}
    fits = [run[0] for runs in prepared.values() for run in runs]
    from wavefin_core.models.training import cpu_threads
    with cpu_threads("cpu", 1):  # small 1-D CNNs: one thread is as fast, and never contends
        logits = iter(_train_all("classifier", fits, steps, batch_size, channels, lr, grouped, workers))
    out = {}
    for name, runs in prepared.items():
        values = []
        for _fit, y_te, _n_train, _shared in runs:
            accuracy = float(((next(logits) > 0).astype(np.float64) == y_te).mean())
            values.append(abs(accuracy - 0.5))
        mean, std = _summary(values)
        m = min(r.shape[0], sets[name].shape[0])
        out[name] = {"mean": mean, "std": std, "seeds": len(values), "values": values,
                     "n_test": 2 * (m - int(round(m * train_fraction))),
                     "n_train": int(min(2 * run[2] for run in runs)),
                     "n_train_sharing_values": int(max(run[3] for run in runs))}
    return out


# ------------------------------------------------------------------------------------------ predictive (TSTR)
def _predictor(channels: int) -> Any:
    from torch import nn

    class _CausalCNN(nn.Module):
        """Causal convolutions (left padding only): the output at step t sees steps t-9..t and predicts t+1."""

        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.ConstantPad1d((3, 0), 0.0), nn.Conv1d(1, channels, 4), nn.ReLU(),
                nn.ConstantPad1d((6, 0), 0.0), nn.Conv1d(channels, channels, 4, dilation=2), nn.ReLU(),
                nn.Conv1d(channels, 1, 1),
            )

        def forward(self, x: Any) -> Any:
            return self.net(x.unsqueeze(1)).squeeze(1)

    return _CausalCNN()


def _predictive_fit(train: np.ndarray, test: np.ndarray, seed: int, target: str) -> tuple[_Fit, np.ndarray, float]:
    """The causal CNN's fit on ``train`` (L1 loss, every step of every window), applied to ``test``: (the fit,
    the test targets in the fit's units, that scale)."""
    scale = float(train.std()) or 1.0  # the training set's own scale: a model learns its data's units

    def xy(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = w[:, 1:] / scale
        return (w[:, :-1] / scale).astype(np.float32), (np.abs(y) if target == "abs_return" else y).astype(np.float32)

    x_tr, y_tr = xy(train)
    x_te, y_te = xy(test)
    return _Fit(x_tr, y_tr, seed, np.random.default_rng(seed), x_te), y_te, scale


def _mae(predicted: np.ndarray, y: np.ndarray, scale: float) -> float:
    import torch

    return float((torch.as_tensor(predicted) - torch.as_tensor(y)).abs().mean()) * scale


# Real-trained reference MAEs by (data digest, n, seed, settings): a report scores several generators against the
# same real train/test windows, and the reference is a deterministic function of exactly these inputs.
_REAL_REFERENCE: dict[tuple[Any, ...], float] = {}


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def tstr_predictive_score(synth: Any, real_train: Any, real_test: Any, n: int | None = None, seeds: int = 3, *,
                          target: Literal["return", "abs_return"] = "return", steps: int = 100,
                          batch_size: int = 128, channels: int = 16, lr: float = 1e-2,
                          grouped: bool = True, workers: int | None = None) -> dict[str, Any]:
    """Train on synthetic, test on real (TSTR), with the same-size real reference.

    A small causal 1-D CNN predicts the next step of a window from its past at every step (TimeGAN's
    predictive score, L1 loss), trained once on ``n`` synthetic windows and once on ``n`` real train windows,
    ``n`` = min(#synth, #real_train) by default, so both see the same amount of data. Both are scored by
    their MAE (in the inputs' units) on every step of every ``real_test`` window. Per seed s (0..seeds-1) the
    ``n`` windows are drawn with seed s and both models start from the same seed-s weights. The real-trained
    reference is cached in memory by (a digest of the real windows, n, seed, settings), so scoring several
    generators against the same real data trains it once per seed.

    ``target="return"`` predicts r_{t+1} (TimeGAN); ``"abs_return"`` predicts |r_{t+1}|, a volatility
    forecast, which rewards a generator for the right scale and volatility clustering (next-step returns
    are nearly unpredictable, so the return MAEs of all generators are close).

    ``grouped``: train the nets together (see the module docstring) or one by one; ``workers``: threads
    training the groups (None: one per available core). To score several generators,
    :func:`tstr_predictive_scores` groups all their nets.

    Returns ``{"mean", "std", "seeds", "values"}`` for the synthetic-trained model, ``"real_mean"``,
    ``"real_std"``, ``"real_values"`` for the real-trained one, ``"n"`` and ``"target"``. Lower is better; a
    synthetic mean close to ``real_mean`` means the synthetic data is as useful as real data for this task.
    """
    return tstr_predictive_scores({"synth": synth}, real_train, real_test, n, seeds, target=target, steps=steps,
                                  batch_size=batch_size, channels=channels, lr=lr, grouped=grouped,
                                  workers=workers)["synth"]


def tstr_predictive_scores(synths: dict[str, Any], real_train: Any, real_test: Any, n: int | None = None,
                           seeds: int = 3, *, target: Literal["return", "abs_return"] = "return", steps: int = 100,
                           batch_size: int = 128, channels: int = 16, lr: float = 1e-2,
                           grouped: bool = True, workers: int | None = None) -> dict[str, dict[str, Any]]:
    """:func:`tstr_predictive_score` of every ``synths[name]`` against the same real windows, with the nets of
    all generators and seeds (and the real references not cached yet) trained together in groups."""
    sets = {name: _windows(w, "synth" if len(synths) == 1 else f"synth[{name!r}]", min_rows=2)
            for name, w in synths.items()}
    tr = _windows(real_train, "real_train", min_rows=2)
    te = _windows(real_test, "real_test", min_rows=1)
    for sy in sets.values():
        if not sy.shape[1] == tr.shape[1] == te.shape[1]:
            raise DataError(f"window lengths differ (synth {sy.shape[1]}, real_train {tr.shape[1]}, real_test "
                            f"{te.shape[1]}); use the same `window_length`.")
    if target not in ("return", "abs_return"):
        raise ConfigError(f"`target` must be 'return' or 'abs_return'; got {target!r}.")
    used = {}
    for name, sy in sets.items():
        n_max = min(sy.shape[0], tr.shape[0])
        used[name] = n_max if n is None else int(n)
        if not 2 <= used[name] <= n_max:
            raise ConfigError(f"`n` = {n} windows per training set must be in 2..{n_max} (the smaller of "
                              f"{sy.shape[0]} synthetic and {tr.shape[0]} real train windows); lower it or pass None.")
    seed_list = _seed_list(seeds)
    real_digest = _digest(tr, te)

    def key(n_used: int, seed: int) -> tuple[Any, ...]:
        return (real_digest, n_used, seed, target, steps, batch_size, channels, lr)

    synth_runs, real_runs, reference = {}, {}, {}
    for name, sy in sets.items():
        for seed in seed_list:
            # Separate streams: the real subsample depends on (seed, n) only, not on the synthetic set's size.
            sy_n = sy[np.random.default_rng([seed, 0]).choice(sy.shape[0], used[name], replace=False)]
            synth_runs[name, seed] = _predictive_fit(sy_n, te, seed, target)
            k = key(used[name], seed)
            if k in _REAL_REFERENCE:
                reference[k] = _REAL_REFERENCE[k]
            elif k not in real_runs:  # the same for every generator scored against this real data: trained once
                tr_n = tr[np.random.default_rng([seed, 1]).choice(tr.shape[0], used[name], replace=False)]
                real_runs[k] = _predictive_fit(tr_n, te, seed, target)
    runs = list(synth_runs.values()) + list(real_runs.values())
    from wavefin_core.models.training import cpu_threads
    with cpu_threads("cpu", 1):  # small 1-D CNNs: one thread is as fast, and never contends
        predicted = _train_all("predictor", [run[0] for run in runs], steps, batch_size, channels, lr, grouped,
                               workers)
    maes = [_mae(p, run[1], run[2]) for p, run in zip(predicted, runs, strict=True)]
    synth_mae = dict(zip(synth_runs, maes[:len(synth_runs)], strict=True))
    reference.update(zip(real_runs, maes[len(synth_runs):], strict=True))
    if len(_REAL_REFERENCE) + len(real_runs) > 256:
        _REAL_REFERENCE.clear()
    _REAL_REFERENCE.update({k: reference[k] for k in real_runs})
    out = {}
    for name in sets:
        synth_vals = [synth_mae[name, seed] for seed in seed_list]
        real_vals = [reference[key(used[name], seed)] for seed in seed_list]
        mean, std = _summary(synth_vals)
        real_mean, real_std = _summary(real_vals)
        out[name] = {"mean": mean, "std": std, "seeds": len(synth_vals), "values": synth_vals,
                     "real_mean": real_mean, "real_std": real_std, "real_values": real_vals, "n": used[name],
                     "target": target}
    return out
