"""Baselines shipped with pytest-dbsec (YAML files beside this one)."""
