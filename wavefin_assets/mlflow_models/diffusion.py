"""MLflow pyfunc of the wavefin diffusion generator, logged from code (see `wavefin_assets.tracking`).

Artifact `model`: the `save_diffusion` directory (diffusers `save_pretrained` safetensors + wavefin.json, which
names the series, their class labels when the model is conditioned, and each series' image representation).

`predict` takes a DataFrame with one row per request, columns `series` and `n_samples` (optional: `seed`
default 0, `sampler` default dpmsolver, `num_inference_steps` default 20), and returns one row per generated
window: `series`, `sample`, `returns` (log returns in that series' units, decoded by the representation's
least-squares inverse). Sampling projects onto realizable images at every step, as synthetic_series does, and
runs on CPU unless `model_config["device"]` says otherwise.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model


class WavefinDiffusion(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from wavefin_core.models import load_diffusion

        config = context.model_config or {}
        self.device = str(config.get("device", "cpu"))
        self.project = bool(config.get("project", True))  # range-consistent sampling, as synthetic_series does
        self.model, self.scheduler, self.meta = load_diffusion(context.artifacts["model"], device=self.device)
        self.shape = tuple(self.meta["sample_shape"])
        self.series = list(self.meta.get("series") or (self.meta.get("extra") or {}).get("series") or [])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        from wavefin_core.models import sample_diffusion

        frames = []
        for row in model_input.to_dict("records"):
            series, n = str(row["series"]), int(row["n_samples"])
            if series not in self.series:
                raise ValueError(f"this diffusion model was not trained on series {series!r}; it knows "
                                 f"{self.series}")
            label = self.series.index(series) if self.meta["config"].get("conditioning") == "class" else None
            representation = self._representation(series)
            project = getattr(representation, "project", None) if self.project else None
            images = sample_diffusion(self.model, self.shape, n, sampler=str(row.get("sampler", "dpmsolver")),
                                      num_inference_steps=int(row.get("num_inference_steps", 20)),
                                      seed=int(row.get("seed", 0)), device=self.device,
                                      train_scheduler=self.scheduler, class_labels=label, project=project)
            returns = self._decode(series, representation, images)
            frames.append(pd.DataFrame({"series": series, "sample": np.arange(n), "returns": list(returns)}))
        return pd.concat(frames, ignore_index=True)

    def _representation(self, series):
        """The series' image representation (format 2 models); None for format-1 models (inverse maps)."""
        saved = (self.meta.get("representations") or {}).get(series)
        if saved is None:
            return None
        from wavefin_core.wavelets.representations import representation_from_dict

        return representation_from_dict(saved)

    def _decode(self, series, representation, images):
        """Images -> log-return windows (N, T) in the series' units."""
        if representation is not None:
            returns, _ = representation.decode(images)
            return returns
        inverse = self.meta["extra"]["inverse"][series]  # format 1: the complex Morlet inverse map
        from wavefin_core.wavelets import from_channels, icwt

        coefs = from_channels(np.asarray(images, dtype=np.float32)) * np.asarray(inverse["channel_scale"],
                                                                                np.float32)[:, None]
        standardized = np.asarray(icwt(coefs, np.asarray(inverse["scales"]), inverse["wavelet"]), dtype=np.float64)
        return standardized * float(inverse["norm_std"]) + float(inverse["norm_mean"])


set_model(WavefinDiffusion())
