"""data: a user's table from file to model inputs. May import: core.

tables (the reader of record for every table the project touches) with dialect (compression, encoding,
delimiter, decimal and thousands marks) and dates (one date format per column), snapshot (the ingest snapshot,
its report with the dialect, and the accepted one), column_types (what each column is), target (labels <->
indices), preprocessing (the fitted encodings, JSON), processed (the processed-splits artifact: arrays, row
positions, state, report), inspect_table (a first look at a new table).
"""
