"""MLflow "models from code": the pyfunc wrappers MLflow logs as source files (never pickled).

Each file here ends with `mlflow.models.set_model(...)`; `wavefin_assets.tracking.log_and_register` passes its
path as `python_model=`, MLflow copies the file into the model, and `mlflow.pyfunc.load_model` runs it and
calls `load_context`, which reads the safetensors / JSON artifacts. Nothing imports these modules otherwise.
"""
