"""The executor, chosen by the environment: in-process/multiprocess locally, one pod per step on Kubernetes.

`WAVEFIN_EXECUTOR=k8s` (set by deploy/helm/values.yaml) selects dagster-k8s's `k8s_job_executor`, the executor
that reads each step's `dagster-k8s/config` op tag, so only the GPU assets land on GPU nodes. Unset, Dagster's
default (multiprocess) executor runs. dagster-k8s is the `k8s` extra and is imported only when selected.
"""

from __future__ import annotations

import os

import dagster as dg


@dg.definitions
def executor() -> dg.Definitions:
    if os.environ.get("WAVEFIN_EXECUTOR", "").strip().lower() != "k8s":
        return dg.Definitions()
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:  # a clear message instead of a bare ImportError at code-location load
        raise ImportError(
            "WAVEFIN_EXECUTOR=k8s needs dagster-k8s: pip install 'wavefin[k8s]' (or unset WAVEFIN_EXECUTOR)."
        ) from exc
    return dg.Definitions(executor=k8s_job_executor)
