"""Request bodies in, response bodies out, for the three protocols the server speaks.

- MLflow scoring (`POST /invocations`): JSON `{"dataframe_split": {"columns", "data"}}` or
  `{"dataframe_records": [...]}`, or `text/csv`; answers `{"predictions": [...]}`.
- Open Inference Protocol V2 (`POST /v2/models/{name}/infer`): one input tensor per column; one output per
  prediction column.
- `POST /predict`: `{"records": [...]}` (or a bare list / one record).

Every malformed body is a RequestError (a 4xx with a JSON body naming the row and column), never a 500.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from tabml.serve.checks import Problem

V2_DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
V2_DATATYPES |= {"FP16", "FP32", "FP64", "BYTES"}


@dataclass(frozen=True)
class Table:
    """A request's rows as received: column -> values (JSON values, or what pandas read from CSV), and the count."""

    columns: dict[str, list[Any]]
    rows: int


class RequestError(Exception):
    """A request the server refuses: HTTP status, one line, and the bad cells."""

    def __init__(self, status: int, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []

    def body(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "problems": [p.as_json() for p in self.problems],
        }


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None


def records_table(records: Any, where: str) -> Table:
    """Columns from a list of JSON objects; a record missing a key is an error (send null for missing)."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records:
        raise RequestError(400, f"{where} must be a non-empty list of records (JSON objects)")
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict)]
    if bad:
        problem = Problem(bad[0], "*", "not an object")
        raise RequestError(400, f"{where}: record {bad[0]} is not a JSON object", [problem])
    names = list(records[0])
    if any(len(r) != len(names) for r in records) or any(set(r) != set(names) for r in records[1:]):
        names = list(dict.fromkeys(k for r in records for k in r))
        problems = [
            Problem(i, c, "missing from this record (send null for a missing value)")
            for i, r in enumerate(records)
            for c in names
            if c not in r
        ]
        raise RequestError(422, f"{len(problems)} record key(s) missing", problems[:20])
    return Table({c: [r[c] for r in records] for c in names}, len(records))


def split_table(split: Any) -> Table:
    """MLflow's `dataframe_split`: {"columns": [...], "data": [[...], ...]}."""
    shaped = isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list)
    if not shaped:
        raise RequestError(400, 'dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    columns, data = split["columns"], split["data"]
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            n = len(row) if isinstance(row, list) else "not a list"
            raise RequestError(
                422,
                f"dataframe_split row {i} has {n} values for {len(columns)} columns",
                [Problem(i, "*", f"expected {len(columns)} values")],
            )
    if not data:
        raise RequestError(400, "dataframe_split.data is empty")
    return Table({str(c): [row[j] for row in data] for j, c in enumerate(columns)}, len(data))


def csv_table(body: bytes) -> Table:
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the CSV body cannot be read: {str(exc).strip().splitlines()[0]}") from None
    if frame.empty:
        raise RequestError(400, "the CSV body has no rows")
    return Table({str(c): frame[c].tolist() for c in frame.columns}, len(frame))


def mlflow_table(body: bytes, content_type: str) -> Table:
    """The rows of an MLflow /invocations request."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        return csv_table(body)
    if kind != "application/json":
        raise RequestError(415, f"content type {kind or 'none'!r}: send application/json or text/csv")
    document = parse_json(body)
    if not isinstance(document, dict):
        raise RequestError(400, "the JSON body must be an object with dataframe_split or dataframe_records")
    if "dataframe_split" in document:
        return split_table(document["dataframe_split"])
    if "dataframe_records" in document:
        return records_table(document["dataframe_records"], "dataframe_records")
    raise RequestError(400, f"no dataframe_split or dataframe_records in the body (keys: {sorted(document)[:5]})")


def predict_table(body: bytes) -> Table:
    document = parse_json(body)
    records = document.get("records") if isinstance(document, dict) and "records" in document else document
    return records_table(records, "records")


def v2_table(body: bytes) -> tuple[Table, str | None]:
    """The rows of a V2 infer request (one tensor per column) and the request id."""
    document = parse_json(body)
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, 'a V2 infer request needs "inputs": [{name, shape, datatype, data}, ...]')
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        name = tensor.get("name") if isinstance(tensor, dict) else None
        data = tensor.get("data") if isinstance(tensor, dict) else None
        if not isinstance(name, str) or not isinstance(data, list):
            raise RequestError(400, 'every V2 input needs a string "name" and a "data" list')
        if tensor.get("datatype") not in V2_DATATYPES:
            raise RequestError(
                400,
                f"input {name!r}: datatype {tensor.get('datatype')!r} is not a V2 datatype",
                [Problem(None, name, "unknown datatype")],
            )
        columns[name] = [v for row in data for v in row] if data and isinstance(data[0], list) else data
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        sizes = {k: len(v) for k, v in columns.items()}
        raise RequestError(422, f"V2 inputs must all hold the same number (> 0) of rows: {sizes}")
    request_id = document.get("id")
    return Table(columns, lengths.pop()), request_id if isinstance(request_id, str) else None


def output_records(ids: list[Any] | None, id_column: str | None, out: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per row: the id (when the model has an id column and it was sent), the prediction, the probabilities."""
    names = list(out)
    columns = [out[name].tolist() for name in names]
    if ids is not None and id_column:
        names, columns = [id_column, *names], [ids, *columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def v2_outputs(out: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    outputs = []
    for name, values in out.items():
        numeric = values.dtype.kind == "f"
        data = values.tolist() if numeric else [str(v) for v in values]
        outputs.append({"name": name, "shape": [len(values)], "datatype": "FP64" if numeric else "BYTES", "data": data})
    return outputs
