"""data: a user's table from file to model inputs. May import: core.

tables (the reader of record for every table the project touches) with dialect (compression, encoding,
delimiter, decimal and thousands marks), dates (one date format per column), formats (Parquet and .xlsx) and
csv_batches (a CSV read batch by batch, as ingest streams it), snapshot (the ingest snapshot, its report with the
dialect, and the accepted one), column_types (what each column is), target (labels <-> indices), preprocessing
(the fitted encodings, JSON), processed (the processed-splits artifact: arrays, row positions, state, report),
inspect_table (a first look at a new table).
"""
