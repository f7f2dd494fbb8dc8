"""predict: scoring a file with a registered model (`python -m tabml.predict IN OUT`). May import: core, data,
validation, training, evaluation, registry.

batch (verify the package, check the input, score, write), checks (the input against the model's schema),
prediction_log (every scored row, online and batch, sampled into Parquet part files per model line).
"""
