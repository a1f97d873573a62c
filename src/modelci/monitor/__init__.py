"""Production monitoring: alert rules from the declared SLOs, and the canary analysis."""
