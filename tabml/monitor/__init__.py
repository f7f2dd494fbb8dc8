"""monitor: what the served models see, against what they were trained on (`python -m flows.monitor`). May import:
core, data, validation, training, evaluation, registry, predict.

assess (feature and prediction drift, live performance with a bootstrap interval), trigger (thresholds, cooldown
state), report (the offline HTML page).
"""
