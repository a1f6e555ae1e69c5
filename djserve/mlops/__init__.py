"""MLOps: the MLflow model registry as the record of truth for exported checkpoints and promotion."""
