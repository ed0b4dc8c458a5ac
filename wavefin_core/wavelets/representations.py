"""Image representations of return windows for the diffusion generator: encode, decode, project.

A representation turns a window of log returns into an image ``(C, H, W)`` a UNet can learn, and back. Three
are offered so the generator's default can be chosen by measurement (issue 8):

- ``"complex"``: the complex Morlet CWT of the standardised window as real+imag channels, divided per scale
  by its train RMS -- exactly what the ``scalograms`` asset stores (:func:`wavefin_core.scalograms.
  build_scalograms`).
- ``"logmag_phase"``: the same coefficients ``V`` (per-scale unit RMS) as ``log(|V| + eps)``, standardised per
  scale, plus ``Re V / (|V| + eps)`` and ``Im V / (|V| + eps)``. Why that phase encoding rather than bare
  ``cos/sin`` of the angle: the angle of a near-zero coefficient is undefined, so bare ``cos/sin`` jump
  around wherever ``|V|`` is tiny; divided by ``|V| + eps`` they fade to 0 there instead, and the decoder
  ``V = (c + i s) * (|V| + eps)`` is smooth and exact. ``eps`` is a low quantile of ``|V|`` on train.
- ``"haar"``: the Haar DWT image of :func:`~wavefin_core.wavelets.haar.haar_dwt_image` (each coefficient
  repeated over the samples it covers, so the image is time-aligned), one row per level, each row divided by
  its train RMS.

Every representation first standardises the returns with the mean and std of the training windows' values
(as ``segments`` does), and all scaling is fitted by :meth:`Representation.fit` on the windows it is given.

Why the projection is built here and not from ``icwt`` + ``cwt`` calls: the complex and haar images are a
linear, injective function of the window, ``image = z @ A`` (``A``: ``T x K``). The nearest realizable image
*in the units the network sees* (scaled) is the orthogonal projection ``x @ B @ A`` with ``B = pinv(A)``;
``icwt`` is least squares in unscaled coefficients, which weights the scales differently, so its projection
would be oblique in image space. ``A`` is built by encoding the identity with the very transform
(:func:`~wavefin_core.wavelets.cwt.cwt` / ``haar_dwt_image``), ``B`` from its ``T x T`` Gram matrix in
float64, once per representation. Projecting is then two small matmuls on the images' device (a fused
``icwt`` + ``cwt``), cheap enough for every sampler step. On the images of real windows it changes nothing
(to float rounding), and it is idempotent. ``logmag_phase`` maps to the complex coefficients, projects
there and maps back, so it is idempotent too.

``decode`` uses the same ``B``, so a generated image and its projection decode to the same series, and returns
``residual = ||x - P(x)|| / ||x||`` per image: the share of the image no real series can produce.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.wavelets.cwt import cwt, is_tensor
from wavefin_core.wavelets.filters import wavelet_name
from wavefin_core.wavelets.haar import haar_dwt_image
from wavefin_core.wavelets.images import to_channels
from wavefin_core.wavelets.scales import covering_scales

if TYPE_CHECKING:  # pragma: no cover
    import torch

REPRESENTATIONS = ("complex", "logmag_phase", "haar")
#: ``to_dict`` format tag and version: ``representation_from_dict`` refuses anything else.
FORMAT = "wavefin.representation"
VERSION = 1
#: Above this condition number (largest / smallest singular value of ``A``) the scales miss part of the window's
#: band and decoding would amplify the generator's errors there. Measured: covering scales give 6.4-10.3 (complex,
#: windows 64-512), the Haar image 5.9-17 (its rows repeat coefficients 1 to 2**level times).
MAX_CONDITION = 100.0
#: Largest pair of precomputed operators ``A`` and ``B`` (float64) we agree to build: window 256 with its 57
#: covering scales needs 120 MB, window 512 with 73 scales 545 MB.
MAX_OPERATOR_BYTES = 2 * 2**30
#: ``logmag_phase``: ``eps`` is this quantile of ``|V|`` over the training coefficients (per-scale unit RMS).
#: 1% keeps the log's dynamic range to the coefficients that occur while bounding ``1 / (|V| + eps)``.
EPS_QUANTILE = 0.01


def make_representation(name: str, window: int, *, scales: Any = None, wavelet: str = "cmor1.5-1.0",
                        method: str = "pywt", haar_level: int | None = None) -> Representation:
    """An unfitted representation of ``window``-sample return windows; call :meth:`Representation.fit` next.

    ``scales``/``wavelet``/``method`` configure the CWT of ``complex`` and ``logmag_phase`` (default scales:
    ``covering_scales(window, wavelet)``); ``haar_level`` the Haar depth (default: the deepest level that
    divides ``window``, at most ``log2(window)``).
    """
    if name not in REPRESENTATIONS:
        raise ConfigError(f"representation={name!r} is not known; use one of {', '.join(REPRESENTATIONS)}.")
    window = _checked_window(window)
    if name == "haar":
        return HaarRepresentation(window, level=_checked_haar_level(haar_level, window))
    wavelet = _checked_wavelet(wavelet)
    if method != "pywt":
        raise ConfigError(
            f"method={method!r}: only method='pywt' is supported for representations. The 'analytic' CWT does "
            "not see a window's mean, so generated images could not be decoded to returns; use method='pywt'."
        )
    if scales is None:
        scales = covering_scales(window, wavelet)
    scales = _checked_scales(scales)
    cls = ComplexRepresentation if name == "complex" else LogMagPhaseRepresentation
    return cls(window, scales=scales, wavelet=wavelet)


def representation_from_dict(data: dict) -> Representation:
    """Rebuild a representation (fitted or not) from :meth:`Representation.to_dict`'s output."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"representation dict has format {_get(data, 'format')!r}, expected {FORMAT!r}; pass "
                        "what Representation.to_dict() returned (e.g. a series' entry under 'representations' in a saved model's wavefin.json).")
    if data.get("version") != VERSION:
        raise DataError(f"representation dict has version {data.get('version')!r}; this wavefin reads version "
                        f"{VERSION}. Re-fit the representation (re-materialize the model).")
    try:
        rep = make_representation(data["name"], data["window"], scales=data.get("scales"),
                                  wavelet=data.get("wavelet") or "cmor1.5-1.0", haar_level=data.get("haar_level"))
        fitted = data.get("fitted")
        if fitted is not None:
            rep._load_fitted(fitted)
    except KeyError as missing:
        raise DataError(f"representation dict lacks the field {missing}; pass what Representation.to_dict() "
                        "returned, unmodified.") from None
    return rep


class Representation:
    """Base class: standardisation, the linear range operator, projection and decoding; see the module doc."""

    name: ClassVar[str] = ""
    channels: int = 1

    def __init__(self, window: int) -> None:
        self.window = window
        self.mean: float | None = None
        self.std: float | None = None
        self._operator: tuple[np.ndarray, np.ndarray] | None = None
        self._torch_cache: dict[tuple[str, Any], tuple[Any, Any]] = {}

    # -- subclass hooks ---------------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def _fit_scaling(self, standardized: np.ndarray) -> None:
        """Fit the representation's own scaling on standardised train windows (float32, as encoded)."""
        raise NotImplementedError

    def _linear_images(self, standardized: np.ndarray) -> np.ndarray:
        """The linear image ``z @ A`` of standardised windows (N, T), in the input's precision."""
        raise NotImplementedError

    def _fitted_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_fitted_state(self, fitted: dict[str, Any]) -> None:
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    # Nonlinear wrappers (identity for the linear representations): image <-> linear image.
    def _to_linear(self, images: Any) -> Any:
        return images

    def _from_linear(self, linear: Any) -> Any:
        return linear

    # -- public API -------------------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def fit(self, train_windows: np.ndarray) -> Representation:
        """Fit the standardisation and the scaling on ``train_windows`` (N, T) only; returns ``self``."""
        windows = self._checked_windows(train_windows, "train_windows")
        if len(windows) == 0:
            raise DataError("train_windows is empty; fit on at least one training window (segments' train split).")
        mean, std = float(windows.mean()), float(windows.std())
        if not math.isfinite(std) or std <= 1e-9 * max(float(np.abs(windows).max()), 1e-300):
            raise DataError(f"train_windows have zero variance (std={std}); a representation cannot be scaled. "
                            "Check the input series (a constant price?).")
        self.mean, self.std = mean, std
        self._fit_scaling(self._standardize(windows))
        self._reset_operator()
        self._matrices()  # build (and check the conditioning of) the inverse now, not at the first sampler step
        return self

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """Return windows (N, T) -> scaled images (N, C, H, W) float32."""
        self._require_fitted("encode")
        standardized = self._standardize(self._checked_windows(windows, "windows"))
        return np.asarray(self._from_linear(self._linear_images(standardized)), dtype=np.float32)

    def decode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, C, H, W) -> (returns (N, T) float64 in the series' units, residual (N,)).

        The returns are the series whose image is nearest to each image (least squares in the linear
        representation); ``residual = ||x - P(x)|| / ||x||`` (0 for the image of a real window).
        """
        self._require_fitted("decode")
        x = self._checked_images(images)
        a, b = self._matrices()
        linear = np.asarray(self._to_linear(x.astype(np.float64)), dtype=np.float64).reshape(len(x), -1)
        standardized = linear @ b
        projected = np.asarray(self._from_linear((standardized @ a).reshape((len(x), *self._linear_shape))))
        flat = x.reshape(len(x), -1).astype(np.float64)
        diff = np.linalg.norm(flat - projected.reshape(len(x), -1), axis=1)
        residual = diff / np.maximum(np.linalg.norm(flat, axis=1), 1e-300)
        return standardized * self.std + self.mean, residual

    def project(self, images: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """The nearest realizable image(s): same shape, dtype and device (torch tensor or numpy array).

        Computed in float64 for float64 input, else float32 (the device's fast path).
        """
        self._require_fitted("project")
        if not is_tensor(images):
            x = self._checked_images(images)
            a, b = self._matrices()
            work = x.astype(np.float64)
            linear = np.asarray(self._to_linear(work)).reshape(len(x), -1)
            out = self._from_linear(((linear @ b) @ a).reshape((len(x), *self._linear_shape)))
            return np.asarray(out, dtype=x.dtype)
        import torch

        if tuple(images.shape[1:]) != self.image_shape:
            raise ConfigError(f"images have shape {tuple(images.shape)}; this {self.name} representation makes "
                              f"(N, {', '.join(map(str, self.image_shape))}) images.")
        dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        a, b = self._torch_matrices(images.device, dtype)
        work = images.to(dtype)
        linear = self._to_linear(work).reshape(images.shape[0], -1)
        out = self._from_linear(((linear @ b) @ a).reshape((images.shape[0], *self._linear_shape)))
        return out.to(images.dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: configuration plus the fitted scaling (``fitted`` is None before fit)."""
        fitted = None
        if self.fitted:
            fitted = {"mean": self.mean, "std": self.std, **self._fitted_state()}
        return {"format": FORMAT, "version": VERSION, "name": self.name, "window": self.window,
                **self._config(), "fitted": fitted}

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else "unfitted"
        return f"{type(self).__name__}(window={self.window}, image_shape={self.image_shape}, {state})"

    # -- internals --------------------------------------------------------------------------------------------
    @property
    def _linear_shape(self) -> tuple[int, ...]:
        return self.image_shape

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        mean, std = float(fitted["mean"]), float(fitted["std"])
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise DataError(f"representation dict has fitted.mean={mean}, fitted.std={std}; the std must be a positive "
                            "finite number. Re-fit the representation.")
        self.mean, self.std = mean, std
        self._load_fitted_state(fitted)
        self._reset_operator()

    def _reset_operator(self) -> None:
        self._operator = None
        self._torch_cache = {}

    def _standardize(self, windows: np.ndarray) -> np.ndarray:
        # float32 as the scalograms asset encodes (Segments.normalized(...).astype(float32)), so images match.
        return ((windows - self.mean) / self.std).astype(np.float32)

    def _matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, B)``: ``A`` (T, K) encodes standardised windows linearly, ``B = pinv(A)`` (K, T), float64."""
        if self._operator is None:
            size = 2 * 8 * self.window * int(np.prod(self._linear_shape))
            if size > MAX_OPERATOR_BYTES:
                raise ConfigError(
                    f"the {self.name} representation of a {self.window}-sample window needs {size / 2**30:.1f} GiB of "
                    "precomputed inverse; use shorter windows (segments.window <= 512) or fewer scales "
                    "(scalograms.num_scales)."
                )
            a = np.asarray(self._linear_images(np.eye(self.window)), dtype=np.float64).reshape(self.window, -1)
            gram = a @ a.T
            eigvals, eigvecs = np.linalg.eigh(gram)
            condition = math.sqrt(eigvals[-1] / eigvals[0]) if eigvals[0] > 0 else math.inf
            if condition > MAX_CONDITION:
                raise ConfigError(
                    f"the {self.name} representation of a {self.window}-sample window is not invertible (condition "
                    f"number {condition:.3g}): its scales do not cover the window's band; use "
                    f"scales=covering_scales({self.window}) or leave scales=None."
                )
            b = a.T @ ((eigvecs / eigvals) @ eigvecs.T)
            a.flags.writeable = False
            b.flags.writeable = False
            self._operator = (a, b)
        return self._operator

    def _torch_matrices(self, device: Any, dtype: Any) -> tuple[Any, Any]:
        import torch

        key = (str(device), dtype)
        if key not in self._torch_cache:
            a, b = self._matrices()
            # np.array copies: the cached operators are read-only and torch wants writable memory.
            self._torch_cache[key] = (torch.from_numpy(np.array(a)).to(device=device, dtype=dtype),
                                      torch.from_numpy(np.array(b)).to(device=device, dtype=dtype))
        return self._torch_cache[key]

    def _require_fitted(self, what: str) -> None:
        if not self.fitted:
            raise ConfigError(f"{what}() on an unfitted {self.name} representation: call .fit(train_windows) first "
                              "(or load a fitted one with representation_from_dict).")

    def _checked_windows(self, windows: Any, field: str) -> np.ndarray:
        return checked_windows(windows, field, self.window)

    def _checked_images(self, images: Any) -> np.ndarray:
        arr = np.asarray(images)
        if arr.ndim != 4 or tuple(arr.shape[1:]) != self.image_shape or arr.dtype.kind != "f":
            raise DataError(f"images have shape {arr.shape} and dtype {arr.dtype}; this {self.name} representation "
                            f"decodes float (N, {', '.join(map(str, self.image_shape))}) images.")
        if not np.isfinite(arr).all():
            row = int(np.argwhere(~np.isfinite(arr.reshape(len(arr), -1)))[0, 0])
            raise DataError(f"images row {row} has a non-finite value (a diverged sampler?); it cannot be decoded. "
                            "Resample it, or lower the sampler's steps / use the EMA weights.")
        return arr


class _CwtRepresentation(Representation):
    """Shared by the two CWT representations: scales, wavelet and the per-scale RMS ``channel_scale``."""

    def __init__(self, window: int, *, scales: np.ndarray, wavelet: str) -> None:
        super().__init__(window)
        self.scales = scales
        self.wavelet = wavelet
        self.channel_scale: np.ndarray | None = None

    def _coefficients(self, standardized: np.ndarray) -> np.ndarray:
        return cwt(standardized, self.scales, self.wavelet)

    def _fit_channel_scale(self, coefs: np.ndarray) -> None:
        # As build_scalograms: RMS magnitude per scale over the training windows, in float32.
        scale = np.sqrt(np.mean(np.abs(coefs) ** 2, axis=(0, 2))).astype(np.float32)
        self.channel_scale = np.where(scale > 0, scale, 1.0).astype(np.float32)

    def _complex_channels(self, standardized: np.ndarray) -> np.ndarray:
        """Real+imag channels of the scaled coefficients ``V = W / channel_scale``: (N, 2, S, T)."""
        return to_channels(self._coefficients(standardized) / self.channel_scale[:, None])

    def _config(self) -> dict[str, Any]:
        return {"scales": [float(s) for s in self.scales], "wavelet": self.wavelet, "method": "pywt",
                "haar_level": None}


class ComplexRepresentation(_CwtRepresentation):
    """Real+imag channels of the per-scale-scaled complex CWT: the ``scalograms`` asset's images."""

    name = "complex"
    channels = 2

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (2, len(self.scales), self.window)

    def _fit_scaling(self, standardized: np.ndarray) -> None:
        self._fit_channel_scale(self._coefficients(standardized))

    def _linear_images(self, standardized: np.ndarray) -> np.ndarray:
        return self._complex_channels(standardized)

    def _fitted_state(self) -> dict[str, Any]:
        return {"channel_scale": [float(c) for c in self.channel_scale]}

    def _load_fitted_state(self, fitted: dict[str, Any]) -> None:
        self.channel_scale = _checked_vector(fitted["channel_scale"], len(self.scales), "channel_scale")


class LogMagPhaseRepresentation(_CwtRepresentation):
    """``[(log(|V| + eps) - mu_s) / sd_s, Re V / (|V| + eps), Im V / (|V| + eps)]`` of ``V = W / channel_scale``."""

    name = "logmag_phase"
    channels = 3

    def __init__(self, window: int, *, scales: np.ndarray, wavelet: str) -> None:
        super().__init__(window, scales=scales, wavelet=wavelet)
        self.eps: float | None = None
        self.log_mean: np.ndarray | None = None
        self.log_std: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, len(self.scales), self.window)

    @property
    def _linear_shape(self) -> tuple[int, ...]:
        return (2, len(self.scales), self.window)

    def _fit_scaling(self, standardized: np.ndarray) -> None:
        coefs = self._coefficients(standardized)
        self._fit_channel_scale(coefs)
        magnitude = np.abs(coefs / self.channel_scale[:, None]).astype(np.float64)
        eps = float(np.quantile(magnitude, EPS_QUANTILE))
        self.eps = eps if eps > 0 else 1e-6
        logs = np.log(magnitude + self.eps)
        self.log_mean = logs.mean(axis=(0, 2))
        std = logs.std(axis=(0, 2))
        self.log_std = np.where(std > 0, std, 1.0)

    def _linear_images(self, standardized: np.ndarray) -> np.ndarray:
        return self._complex_channels(standardized)

    def _from_linear(self, linear: Any) -> Any:
        """Complex channels (N, 2, S, T) -> log-magnitude + damped phase (N, 3, S, T)."""
        mu, sd = self._stats_like(linear)
        real, imag = linear[:, 0], linear[:, 1]
        if is_tensor(linear):
            import torch

            shifted = torch.sqrt(real * real + imag * imag) + self.eps
            return torch.stack([(torch.log(shifted) - mu) / sd, real / shifted, imag / shifted], dim=1)
        shifted = np.sqrt(real * real + imag * imag) + self.eps
        return np.stack([(np.log(shifted) - mu) / sd, real / shifted, imag / shifted], axis=1)

    def _to_linear(self, images: Any) -> Any:
        """Inverse of :meth:`_from_linear` on its images: ``V = (c + i s) * exp(log-magnitude)``."""
        mu, sd = self._stats_like(images)
        if is_tensor(images):
            import torch

            shifted = torch.exp(images[:, 0] * sd + mu)
            return torch.stack([images[:, 1] * shifted, images[:, 2] * shifted], dim=1)
        shifted = np.exp(images[:, 0] * sd + mu)
        return np.stack([images[:, 1] * shifted, images[:, 2] * shifted], axis=1)

    def _stats_like(self, like: Any) -> tuple[Any, Any]:
        mu, sd = self.log_mean[:, None], self.log_std[:, None]
        if is_tensor(like):
            import torch

            return (torch.as_tensor(mu, dtype=like.dtype, device=like.device),
                    torch.as_tensor(sd, dtype=like.dtype, device=like.device))
        return mu.astype(like.dtype), sd.astype(like.dtype)

    def _fitted_state(self) -> dict[str, Any]:
        return {"channel_scale": [float(c) for c in self.channel_scale], "eps": self.eps,
                "log_mean": [float(v) for v in self.log_mean], "log_std": [float(v) for v in self.log_std]}

    def _load_fitted_state(self, fitted: dict[str, Any]) -> None:
        n = len(self.scales)
        self.channel_scale = _checked_vector(fitted["channel_scale"], n, "channel_scale")
        self.eps = float(fitted["eps"])
        self.log_mean = _checked_vector(fitted["log_mean"], n, "log_mean", np.float64)
        self.log_std = _checked_vector(fitted["log_std"], n, "log_std", np.float64)


class HaarRepresentation(Representation):
    """The Haar DWT image (1 channel, ``level + 1`` rows), each row divided by its train RMS.

    The image repeats each coefficient over the ``2**j`` samples it covers, so only block-constant rows are
    realizable: projecting replaces each block by its mean (the orthogonal projection onto them).
    """

    name = "haar"
    channels = 1

    def __init__(self, window: int, *, level: int) -> None:
        super().__init__(window)
        self.level = level
        self.row_scale: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.level + 1, self.window)

    def _fit_scaling(self, standardized: np.ndarray) -> None:
        rows = haar_dwt_image(standardized, self.level)  # (N, level + 1, T)
        scale = np.sqrt(np.mean(rows.astype(np.float64) ** 2, axis=(0, 2))).astype(np.float32)
        self.row_scale = np.where(scale > 0, scale, 1.0).astype(np.float32)

    def _linear_images(self, standardized: np.ndarray) -> np.ndarray:
        rows = haar_dwt_image(standardized, self.level) / self.row_scale[:, None].astype(standardized.dtype)
        return rows[:, None]

    def _fitted_state(self) -> dict[str, Any]:
        return {"row_scale": [float(v) for v in self.row_scale]}

    def _load_fitted_state(self, fitted: dict[str, Any]) -> None:
        self.row_scale = _checked_vector(fitted["row_scale"], self.level + 1, "row_scale")

    def _config(self) -> dict[str, Any]:
        return {"scales": None, "wavelet": None, "method": None, "haar_level": self.level}

    def level_energy(self, images: np.ndarray) -> np.ndarray:
        """Mean square of each image row (Haar level, coarse to fine) over a set of images: (level + 1,).

        Rows are divided by their train RMS, so the train windows' images give 1 at every level; a generated set's
        values are its energy per level relative to train (the diagnosis of issue 8's lag-1 bias).
        """
        self._require_fitted("level_energy")
        x = self._checked_images(images).astype(np.float64)
        return np.mean(x * x, axis=(0, 1, 3))

    def calibrate_levels(self, images: np.ndarray,
                         target_energy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(images with every level's mean square set to the train windows', the per-level factors applied).

        Why: a generator that puts too much (or too little) energy into one Haar level biases what that level
        carries; excess energy at the finest level (d = (x_2k - x_2k+1) / sqrt 2) anti-correlates neighbouring
        returns, i.e. a negative lag-1 ACF. The train target is 1 per row (rows are scaled by their train RMS),
        so each row of the set is multiplied by ``1 / sqrt(its mean square over the set)``. Haar is
        orthonormal and a row scaled by one factor stays block-constant, so realizable images stay exactly
        realizable (the projection residual is unchanged). The factors depend on the whole set: calibrate all of
        a series' generated images together, after sampling and before decoding. A row that is all zeros keeps
        factor 1.

        ``target_energy`` ((level + 1,), default all 1: the whole train set) is the mean square per level to match
        instead, e.g. :meth:`level_energy` of the train images of one volatility bucket, to calibrate each
        bucket's generated images to its own train windows (the ``--ladder objective`` per-bucket rows).
        """
        energy = self.level_energy(images)
        target = np.ones_like(energy) if target_energy is None else self._checked_target_energy(target_energy)
        factors = np.where(energy > 0, np.sqrt(target / np.where(energy > 0, energy, 1.0)), 1.0)
        x = np.asarray(images)
        return (x * factors[None, None, :, None].astype(x.dtype)).astype(x.dtype, copy=False), factors

    def _checked_target_energy(self, target_energy: Any) -> np.ndarray:
        target = np.asarray(target_energy, dtype=np.float64)
        if target.shape != (self.level + 1,) or not np.all(np.isfinite(target)) or np.any(target < 0):
            raise ConfigError(f"target_energy of shape {target.shape} must be {self.level + 1} finite numbers >= 0 "
                              "(one mean square per Haar image row, coarse to fine); pass level_energy(train images) "
                              "or None for the whole train set's (1 per row).")
        return target


# -- validation helpers ----------------------------------------------------------------------------------------
def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else type(data).__name__


def _checked_window(window: Any) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 4:
        raise ConfigError(f"window={window!r} must be an integer >= 4 (samples per window; segments.window).")
    return int(window)


def _checked_wavelet(wavelet: Any) -> str:
    try:
        return wavelet_name(wavelet)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"wavelet={wavelet!r} is not a continuous wavelet pywt knows ({err}); use e.g. "
                          "'cmor1.5-1.0'.") from None


def _checked_scales(scales: Any) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(scales, dtype=np.float64))
    except (TypeError, ValueError):
        arr = np.array([np.nan])
    if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        shown = repr(scales) if len(repr(scales)) <= 80 else repr(scales)[:77] + "..."
        raise ConfigError(f"scales={shown} must be at least 2 positive, finite numbers; use "
                          "covering_scales(window, num=...) or leave scales=None.")
    return arr


def _checked_haar_level(level: Any, window: int) -> int:
    deepest = 0
    while window % (2 ** (deepest + 1)) == 0 and 2 ** (deepest + 1) <= window:
        deepest += 1
    if level is None:
        if deepest == 0:
            raise ConfigError(f"window={window} is odd, so it has no Haar level; use an even window (e.g. 64) "
                              "for representation='haar'.")
        return deepest
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 1:
        raise ConfigError(f"haar_level={level!r} must be an integer >= 1 or None (the deepest level that fits).")
    if level > deepest:
        raise ConfigError(f"haar_level={level} needs a window divisible by 2**{level} = {2 ** level}, but "
                          f"window={window}; use haar_level <= {deepest} or a window that is a multiple of "
                          f"{2 ** level}.")
    return int(level)


def _checked_vector(values: Any, size: int, field: str, dtype: Any = np.float32) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.shape != (size,) or not np.all(np.isfinite(arr)):
        raise DataError(f"representation dict field fitted.{field} must hold {size} finite numbers, got shape "
                        f"{arr.shape}; re-fit the representation.")
    return arr


def checked_windows(windows: Any, field: str, window: int | None = None) -> np.ndarray:
    """``windows`` as a float64 ``(N, window)`` array of finite log returns (any width when ``window`` is None), or a
    DataError naming ``field`` (and the first bad row) and what to pass instead."""
    arr = np.asarray(windows)
    if arr.ndim != 2 or (window is not None and arr.shape[1] != window) or arr.dtype.kind not in "iuf":
        expected = f"real (N, {window})" if window is not None else "(N, T)"
        raise DataError(f"{field} has shape {arr.shape} and dtype {arr.dtype}; pass {expected} windows of log "
                        "returns, one window per row.")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DataError(f"{field} row {row} has a non-finite value; drop or repair that window first.")
    return arr
