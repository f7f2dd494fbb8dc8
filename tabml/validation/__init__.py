"""validation: the guard between ingest and preprocess. May import: core, data.

reference (the reviewed expectations of a dataset), expectations (the GX suite and pandas-only checks), drift
(PSI per column), quarantine (rejected batches set aside), data_docs (the offline HTML page), report (the
validation report artifact).
"""
