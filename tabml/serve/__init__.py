"""serve: the online scoring server (`python -m tabml.serve`). May import: core, data, validation, training,
evaluation, registry, predict.

server (CLI, uvicorn), app (routes), protocols (MLflow, V2, /predict bodies), checks (per row and column),
models (the production version of each line, hot reload), batching (micro-batches), telemetry (metrics, access log).
"""
