"""Compare runs (DVC experiments or registry versions) on one self-contained HTML page: `python -m tabml.report`."""
