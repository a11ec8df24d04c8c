"""The MLflow client's REST protocol, translated onto our runs, experiments, artifacts
and registry (docs/compat/mlflow.md). Routes: ``appliance/api/mlflow/``."""
