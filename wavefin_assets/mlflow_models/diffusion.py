"""MLflow pyfunc of the wavefin diffusion generator, logged from code (see `wavefin_assets.tracking`).

Artifact `model`: the `save_diffusion` directory (diffusers `save_pretrained` safetensors + wavefin.json, which
names the series, their class labels when the model is conditioned, each series' image representation and, for
a model conditioned on volatility regimes, each series' buckets: samples get (series, bucket) labels drawn from
the train frequencies and are rescaled as `wavefin_core.models.regimes.plan_samples` says).

`predict` takes a DataFrame with one row per request, columns `series` and `n_samples` (optional: `seed`
default 0, `sampler` default dpmsolver, `num_inference_steps` default 20, `scale_draw` default drift where the
model saved drift tables, else independent, `shape_calibration` default the core's DEFAULT_SHAPE_CALIBRATION),
and returns one row per generated window: `series`, `sample`,
`returns` (log returns in that series' units, decoded by the representation's least-squares inverse). As
synthetic_series does: sampling projects onto realizable images at every step, a Haar model's generated set is
calibrated level by level to the train energy (`model_config["level_calibration"]`, default true; the factors
depend on the set, so ask for a few hundred windows at once), the decoded shapes get the train shapes' marginal
and within-window leverage (fitted on the request's windows: under ~160 windows of 64 nothing is fitted), and
each sample's volatility is drawn for its shape's drift. Runs on CPU unless `model_config["device"]` says otherwise.
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
        self.level_calibration = bool(config.get("level_calibration", True))
        self.shape_calibration = config.get("shape_calibration")  # None: the core's default, as synthetic_series
        self.model, self.scheduler, self.meta = load_diffusion(context.artifacts["model"], device=self.device)
        self.shape = tuple(self.meta["sample_shape"])
        self.series = list(self.meta.get("series") or [])

    # `pd.DataFrame` is a hint MLflow reads no schema from (its type_hints_no_signature_inference): no validation
    # or conversion of the input, as without hints, and no "Add type hints" warning on every load.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        from wavefin_core.models import sample_diffusion
        from wavefin_core.models.regimes import (
            DEFAULT_SCALE_DRAW,
            DEFAULT_SHAPE_CALIBRATION,
            plan_samples,
            regimes_from_meta,
        )

        frames = []
        for row in model_input.to_dict("records"):
            series, n = str(row["series"]), int(row["n_samples"])
            if series not in self.series:
                raise ValueError(f"this diffusion model was not trained on series {series!r}; it knows "
                                 f"{self.series}")
            index = self.series.index(series) if self.meta["config"].get("conditioning") == "class" else None
            representation = self._representation(series)
            project = representation.project if self.project else None
            seed = int(row.get("seed", 0))
            # (series, volatility bucket) labels and the per-sample scales, as synthetic_series draws them
            regimes = regimes_from_meta(self.meta, series)
            default_draw = DEFAULT_SCALE_DRAW if regimes.drift_edges is not None else "independent"
            # a model saved before the train leverage curve (or the shape quantiles) existed gets the calibration
            # it can do: "marginal" (or "rms")
            default_shape = (DEFAULT_SHAPE_CALIBRATION if regimes.shape_leverage is not None
                             else "marginal" if regimes.shape_quantiles is not None else "rms")
            shape = row.get("shape_calibration") or self.shape_calibration or default_shape
            plan = plan_samples(regimes, index, n, seed, str(row.get("scale_draw") or default_draw), str(shape))
            images = sample_diffusion(self.model, self.shape, n, sampler=str(row.get("sampler", "dpmsolver")),
                                      num_inference_steps=int(row.get("num_inference_steps", 20)),
                                      seed=seed, device=self.device,
                                      train_scheduler=self.scheduler, class_labels=plan.labels, project=project)
            calibrate = getattr(representation, "calibrate_levels", None)
            if self.level_calibration and calibrate is not None:
                images, _ = calibrate(images)
            returns, _ = representation.decode(images)
            returns = plan.rescale(returns)  # log returns in the series' units
            frames.append(pd.DataFrame({"series": series, "sample": np.arange(n), "returns": list(returns)}))
        return pd.concat(frames, ignore_index=True)

    def _representation(self, series):
        """The series' image representation, saved in wavefin.json (`load_diffusion` reads format 2 only, and
        format 2 stores one per series), which decodes samples to returns and projects them while sampling."""
        saved = (self.meta.get("representations") or {}).get(series)
        if saved is None:
            raise ValueError(f"this diffusion model saved no representation for series {series!r}, so its samples "
                             "cannot be decoded to returns; re-materialize diffusion_model to save one.")
        from wavefin_core.wavelets.representations import representation_from_dict

        return representation_from_dict(saved)


set_model(WavefinDiffusion())
