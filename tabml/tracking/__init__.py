"""tracking: W&B, which can never fail a run. May import: core.

runs (start/resume/finish a run, offline fallback), stage_reports (what evaluate and register add to the run),
sync (upload offline runs once), model_registry (link a registered version, online only).
"""
