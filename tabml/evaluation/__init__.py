"""evaluation: how good a model is. May import: core, data, training.

metrics (torchmetrics, pure), baselines (majority and linear), slices (metrics per category value), plots
(PNG figures), bootstrap (paired intervals of a metric difference), scorer (a model folder scoring raw rows
with its own preprocessing state), outputs (the evaluation-outputs artifact: metrics.json, plots, figures).
"""
