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
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np

from wavefin_core.errors import ConfigError, DataError

__all__ = ["posthoc_discriminative_score", "tstr_predictive_score"]


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
    themselves with a random split. The purge makes held-out windows new to the classifier. If it would leave
    fewer than a quarter of the other rows (windows that replay the same values all over, e.g. a block
    bootstrap), it is skipped and the count of shared rows is reported instead.
    Returns (train rows, held-out rows, number of training rows left sharing values with held-out rows).
    """
    start = int(rng.integers(0, w.shape[0] - n_test + 1))
    test = np.arange(start, start + n_test)
    rest = np.r_[np.arange(start), np.arange(start + n_test, w.shape[0])]
    shares = np.isin(w[rest], np.unique(w[test])).any(axis=1)
    n_shared = int(shares.sum())
    if rest.size - n_shared >= max(2, rest.size // 4):
        return rest[~shares], test, 0
    return rest, test, n_shared


def _one_discriminative_seed(r: np.ndarray, s: np.ndarray, seed: int, train_fraction: float, steps: int,
                             batch_size: int, channels: int, lr: float, scale: str) -> tuple[float, int, int]:
    import torch
    import torch.nn.functional as F

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
    xt = torch.as_tensor(x_tr, dtype=torch.float32)
    yt = torch.as_tensor(y_tr, dtype=torch.float32)
    net = _train_seeded(lambda: _classifier(channels), xt, yt, F.binary_cross_entropy_with_logits, seed, rng,
                        steps, batch_size, lr)
    with torch.no_grad():
        logits = net(torch.as_tensor(x_te, dtype=torch.float32)).numpy()
    accuracy = float(((logits > 0).astype(np.float64) == y_te).mean())
    return abs(accuracy - 0.5), n_train, r_shared + s_shared


def posthoc_discriminative_score(real: Any, synth: Any, seeds: int = 5, *, train_fraction: float = 0.8,
                                 steps: int = 100, batch_size: int = 128, channels: int = 16,
                                 lr: float = 1e-2, scale: Literal["global", "per_window"] = "global",
                                 ) -> dict[str, Any]:
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

    Returns ``{"mean", "std" (ddof 1; 0 for one seed), "seeds" (int), "values" (list, one per seed),
    "n_test" (held-out windows per seed, both classes), "n_train" (training windows, both classes, smallest
    over seeds), "n_train_sharing_values" (training rows that shared values with held-out rows but could not
    be dropped, largest over seeds; > 0 means the score is an upper bound)}``. Noise: n_test held-out windows
    give a standard deviation of about 0.5 / sqrt(n_test) when they are independent; a block of stride-1
    windows holds only ~(n_test / 2 + T) distinct values, so expect much more spread, and quote the std.
    Compare generators with the real-vs-real floor, not with 0.
    """
    r = _windows(real, "real", min_rows=10)
    s = _windows(synth, "synth", min_rows=10)
    if r.shape[1] != s.shape[1]:
        raise DataError(f"real windows have length {r.shape[1]} but synthetic ones {s.shape[1]}; "
                        "generate windows of the same `window_length`.")
    if not 0 < train_fraction < 1:
        raise ConfigError(f"`train_fraction` must be in (0, 1); got {train_fraction}.")
    if scale not in ("global", "per_window"):
        raise ConfigError(f"`scale` must be 'global' or 'per_window'; got {scale!r}.")
    from wavefin_core.models.training import cpu_threads
    with cpu_threads("cpu", 1):  # small 1-D CNNs: one thread is as fast, and never contends
        runs = [_one_discriminative_seed(r, s, seed, train_fraction, steps, batch_size, channels, lr, scale)
                for seed in _seed_list(seeds)]
    values = [run[0] for run in runs]
    mean, std = _summary(values)
    m = min(r.shape[0], s.shape[0])
    return {"mean": mean, "std": std, "seeds": len(values), "values": values,
            "n_test": 2 * (m - int(round(m * train_fraction))),
            "n_train": int(min(2 * run[1] for run in runs)),
            "n_train_sharing_values": int(max(run[2] for run in runs))}


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


def _fit_predict_mae(train: np.ndarray, test: np.ndarray, seed: int, target: str, steps: int, batch_size: int,
                     channels: int, lr: float) -> float:
    """Train the causal CNN on ``train`` (L1 loss, every step of every window) and return its MAE on ``test``."""
    import torch

    rng = np.random.default_rng(seed)
    scale = float(train.std()) or 1.0  # the training set's own scale: a model learns its data's units

    def xy(w: np.ndarray) -> tuple[Any, Any]:
        x = torch.as_tensor(w[:, :-1] / scale, dtype=torch.float32)
        y = w[:, 1:] / scale
        return x, torch.as_tensor(np.abs(y) if target == "abs_return" else y, dtype=torch.float32)

    x_tr, y_tr = xy(train)
    net = _train_seeded(lambda: _predictor(channels), x_tr, y_tr, lambda out, y: (out - y).abs().mean(), seed,
                        rng, steps, batch_size, lr)
    x_te, y_te = xy(test)
    with torch.no_grad():
        return float((net(x_te) - y_te).abs().mean()) * scale


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
                          batch_size: int = 128, channels: int = 16, lr: float = 1e-2) -> dict[str, Any]:
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

    Returns ``{"mean", "std", "seeds", "values"}`` for the synthetic-trained model, ``"real_mean"``,
    ``"real_std"``, ``"real_values"`` for the real-trained one, ``"n"`` and ``"target"``. Lower is better; a
    synthetic mean close to ``real_mean`` means the synthetic data is as useful as real data for this task.
    """
    sy = _windows(synth, "synth", min_rows=2)
    tr = _windows(real_train, "real_train", min_rows=2)
    te = _windows(real_test, "real_test", min_rows=1)
    if not sy.shape[1] == tr.shape[1] == te.shape[1]:
        raise DataError(f"window lengths differ (synth {sy.shape[1]}, real_train {tr.shape[1]}, real_test "
                        f"{te.shape[1]}); use the same `window_length`.")
    if target not in ("return", "abs_return"):
        raise ConfigError(f"`target` must be 'return' or 'abs_return'; got {target!r}.")
    n_max = min(sy.shape[0], tr.shape[0])
    n_used = n_max if n is None else int(n)
    if not 2 <= n_used <= n_max:
        raise ConfigError(f"`n` = {n} windows per training set must be in 2..{n_max} (the smaller of "
                          f"{sy.shape[0]} synthetic and {tr.shape[0]} real train windows); lower it or pass None.")
    synth_vals, real_vals = [], []
    real_digest = _digest(tr, te)
    from wavefin_core.models.training import cpu_threads
    with cpu_threads("cpu", 1):  # small 1-D CNNs: one thread is as fast, and never contends
        for seed in _seed_list(seeds):
            # Separate streams: the real subsample depends on (seed, n) only, not on the synthetic set's size.
            sy_n = sy[np.random.default_rng([seed, 0]).choice(sy.shape[0], n_used, replace=False)]
            tr_n = tr[np.random.default_rng([seed, 1]).choice(tr.shape[0], n_used, replace=False)]
            synth_vals.append(_fit_predict_mae(sy_n, te, seed, target, steps, batch_size, channels, lr))
            key = (real_digest, n_used, seed, target, steps, batch_size, channels, lr)
            if key not in _REAL_REFERENCE:  # the same for every generator scored against this real data
                if len(_REAL_REFERENCE) >= 256:
                    _REAL_REFERENCE.clear()
                _REAL_REFERENCE[key] = _fit_predict_mae(tr_n, te, seed, target, steps, batch_size, channels, lr)
            real_vals.append(_REAL_REFERENCE[key])
    mean, std = _summary(synth_vals)
    real_mean, real_std = _summary(real_vals)
    return {"mean": mean, "std": std, "seeds": len(synth_vals), "values": synth_vals, "real_mean": real_mean,
            "real_std": real_std, "real_values": real_vals, "n": n_used, "target": target}
