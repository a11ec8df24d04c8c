"""Routes in the MLflow client's protocol (docs/compat/mlflow.md); the translation is
``appliance.compat.mlflow``. Not in /openapi.json: MLflow's own spec describes them."""
