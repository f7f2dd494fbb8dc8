"""Peak memory of reading a big landing CSV: the reader of record against the reader before it and a batched read.

Each reader runs in its own process on the same generated CSV (the example table's columns, repeated with noise),
and prints its wall time and peak RSS (`ru_maxrss` of the child):

- `before`: what tabml.data.tables did before issue 14 (the whole file decoded as a check, then `pd.read_csv`);
- `reader`: `tabml.data.tables.read_table` (the encoding checked in chunks, detection on a sample, pandas reads
  the bytes; plus the date and dialect work);
- `batches`: pyarrow's streaming CSV reader written to Parquet batch by batch (what a batched ingest would hold).

    python -m bench.read_memory [--rows 1000000]    # the issue's case is --rows 3000000 (about 200 MB)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

READERS = ("before", "reader", "batches")


def generate(path: Path, rows: int) -> Path:
    """A CSV shaped like the example table, written in chunks so the generator stays small too."""
    rng = np.random.default_rng(0)
    chunk = 250_000
    with path.open("w") as out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            frame = pd.DataFrame({
                "Status": rng.choice(["good", "bad"], n), "Seniority": rng.integers(0, 40, n),
                "Home": rng.choice(["rent", "owner", "parents", "NA"], n), "Time": rng.choice([12, 24, 36, 60], n),
                "Age": rng.integers(18, 70, n), "Job": rng.choice(["fixed", "freelance", "partime"], n),
                "Income": rng.normal(130, 40, n).round(1), "Assets": rng.exponential(5000, n).round(0),
                "Amount": rng.integers(100, 5000, n), "Price": rng.integers(200, 8000, n),
                "Opened": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")),
            })  # fmt: skip
            frame.to_csv(out, index=False, header=start == 0, date_format="%Y-%m-%d")
    return path


def read_once(reader: str, path: Path) -> None:
    """Run one reader in this process (the child)."""
    if reader == "before":
        path.read_text(encoding="utf-8")  # the old encoding check decoded the whole file
        pd.read_csv(path, sep=",", encoding="utf-8", skipinitialspace=True)
    elif reader == "reader":
        from tabml.data.tables import read_table

        read_table(path)
    else:
        import pyarrow.csv as pv
        import pyarrow.parquet as pq

        stream = pv.open_csv(path)
        with pq.ParquetWriter(path.with_suffix(".parquet"), stream.schema) as writer:
            for batch in stream:
                writer.write_batch(batch)


def measure(reader: str, path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one reader in a fresh process."""
    start = time.perf_counter()
    code = "import sys; from pathlib import Path; from bench.read_memory import read_once; "
    code += "read_once(sys.argv[1], Path(sys.argv[2])); import resource; "
    code += "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    done = subprocess.run([sys.executable, "-c", code, reader, str(path)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    return seconds, int(done.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp) / "big.csv", args.rows)
        size = path.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {size:.0f} MB CSV; peak RSS includes Python, pandas and pyarrow (~100 MB)")
        print(f"{'reader':<10}{'seconds':>10}{'peak RSS MB':>14}{'RSS / file size':>18}")
        for reader in READERS:
            seconds, peak = measure(reader, path)
            print(f"{reader:<10}{seconds:>10.1f}{peak:>14.0f}{peak / size:>18.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
