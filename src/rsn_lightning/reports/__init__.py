"""Figures (matplotlib) drawn from evaluations, error analyses and sweeps."""
