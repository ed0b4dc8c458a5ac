"""wavefin_core: the pure science of wavefin (wavelets, data, models, evaluation).

Never imports dagster or mlflow, so everything here is usable and testable without an orchestrator.
"""

__version__ = "0.1.0"
