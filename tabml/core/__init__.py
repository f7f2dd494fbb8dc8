"""core: what every other package stands on, importing nothing else of tabml.

params (the typed params.yaml; data_params holds its `data:` and `predict:` sections), errors (StageError and
the exit codes a stage reports), fs_errors (a full disk, read-only, permission, size limit as one line), stage
(the CLI shell every stage runs in), lifeline (a stage dies with its flow), env (telemetry off), files
(checksums, atomic writes), redact (secrets out of records).
"""
