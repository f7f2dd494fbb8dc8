"""validation: the guard between ingest and preprocess. May import: core, data.

reference (the reviewed expectations of a dataset, with the dialect it was read with), expectations (the GX
suite and pandas-only checks), dialect_checks (a batch's date formats against the reference's), drift (PSI per
column), quarantine (rejected batches set aside), data_docs (the offline HTML page), report (the validation
report artifact).
"""
