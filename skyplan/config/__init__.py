"""Loading and validating links.yaml: YAML with positions, pydantic models, semantic rules."""
