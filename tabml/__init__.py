"""Shared building blocks of the tabular training pipeline (one module per idea)."""
