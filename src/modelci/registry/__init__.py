"""MLflow Model Registry: register with lineage, gate and promote, roll back, deploy, release."""
