"""Other tools' protocols answered from our services (the MLflow client today)."""
