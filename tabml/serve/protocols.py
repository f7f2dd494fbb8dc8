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
from typing import Any

import numpy as np
import orjson
import pandas as pd

from tabml.serve.checks import Problem

V2_DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
V2_DATATYPES |= {"FP16", "FP32", "FP64", "BYTES"}


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


def records_frame(records: Any, where: str) -> pd.DataFrame:
    """A frame from a list of JSON objects; a record missing a key is an error (send null for missing)."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records:
        raise RequestError(400, f"{where} must be a non-empty list of records (JSON objects)")
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict)]
    if bad:
        raise RequestError(
            400, f"{where}: record {bad[0]} is not a JSON object", [Problem(bad[0], "*", "not an object")]
        )
    columns = list(dict.fromkeys(k for r in records for k in r))
    problems = [
        Problem(i, c, "missing from this record (send null for a missing value)")
        for i, r in enumerate(records)
        for c in columns
        if c not in r
    ]
    if problems:
        raise RequestError(422, f"{len(problems)} record key(s) missing", problems[:20])
    return pd.DataFrame.from_records(records, columns=columns)


def split_frame(split: Any) -> pd.DataFrame:
    """MLflow's `dataframe_split`: {"columns": [...], "data": [[...], ...]}."""
    if (
        not isinstance(split, dict)
        or not isinstance(split.get("columns"), list)
        or not isinstance(split.get("data"), list)
    ):
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
    return pd.DataFrame(data, columns=columns)


def mlflow_frame(body: bytes, content_type: str) -> pd.DataFrame:
    """The frame of an MLflow /invocations request."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"the CSV body cannot be read: {str(exc).strip().splitlines()[0]}") from None
        if frame.empty:
            raise RequestError(400, "the CSV body has no rows")
        return frame
    if kind != "application/json":
        raise RequestError(415, f"content type {kind or 'none'!r}: send application/json or text/csv")
    document = parse_json(body)
    if not isinstance(document, dict):
        raise RequestError(400, "the JSON body must be an object with dataframe_split or dataframe_records")
    if "dataframe_split" in document:
        return split_frame(document["dataframe_split"])
    if "dataframe_records" in document:
        return records_frame(document["dataframe_records"], "dataframe_records")
    raise RequestError(400, f"no dataframe_split or dataframe_records in the body (keys: {sorted(document)[:5]})")


def predict_frame(body: bytes) -> pd.DataFrame:
    document = parse_json(body)
    records = document.get("records") if isinstance(document, dict) and "records" in document else document
    return records_frame(records, "records")


def v2_frame(body: bytes) -> tuple[pd.DataFrame, str | None]:
    """The frame of a V2 infer request (one tensor per column) and the request id."""
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
        flat = np.asarray(data, dtype=object).reshape(-1).tolist() if data and isinstance(data[0], list) else data
        columns[name] = flat
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        sizes = {k: len(v) for k, v in columns.items()}
        raise RequestError(422, f"V2 inputs must all hold the same number (> 0) of rows: {sizes}")
    request_id = document.get("id")
    return pd.DataFrame(columns), request_id if isinstance(request_id, str) else None


def _values(series: pd.Series) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in series.tolist()]


def output_records(out: pd.DataFrame) -> list[dict[str, Any]]:
    """Prediction and probability columns per row (the id column too when the model has one)."""
    keep = [c for c in out.columns if c not in ("model_name", "model_version")]
    return out[keep].to_dict(orient="records")


def v2_outputs(out: pd.DataFrame) -> list[dict[str, Any]]:
    outputs = []
    for column in out.columns:
        if column in ("model_name", "model_version"):
            continue
        numeric = pd.api.types.is_float_dtype(out[column].dtype)
        datatype = "FP64" if numeric else "BYTES"
        values = _values(out[column]) if numeric else [str(v) for v in out[column]]
        outputs.append({"name": column, "shape": [len(out)], "datatype": datatype, "data": values})
    return outputs
