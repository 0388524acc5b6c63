"""Scoring: metrics on arrays, scanpath metrics, evaluation of models on datasets, per window."""
