"""The scoring server over HTTP: a real uvicorn process on 127.0.0.1 serving a registry built from the fixture."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tabml.predict.batch import predict_file
from tabml.predict.prediction_log import VERSION, read_window
from tabml.registry.store import rollback
from tests.serve_process import (
    FIXTURE,
    fixture_registry,
    promote_to_production,
    publish_copy,
    running_server,
    serve_params,
)

pytestmark = pytest.mark.slow
ROWS = pd.read_csv(FIXTURE / "rows.csv")
SENT = ROWS.astype(object).where(ROWS.notna(), None)  # what a JSON client sends: null for a missing value


def records(n: int | None = None) -> list[dict[str, object]]:
    return SENT.head(n if n is not None else len(SENT)).to_dict("records")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path, Path]]:
    root = tmp_path_factory.mktemp("serve")
    registry, params = fixture_registry(root), serve_params(root, log_flush_seconds=0.2)
    with running_server(registry, params) as client:
        yield client, registry, root


def batch_scores(registry: Path, tmp_path: Path) -> pd.DataFrame:
    done = predict_file(registry, "credit", FIXTURE / "rows.csv", tmp_path / "batch.csv")
    return pd.read_csv(done.output)


def v2_request(rows: pd.DataFrame) -> dict[str, object]:
    def tensor(column: str) -> dict[str, object]:
        numeric = pd.api.types.is_numeric_dtype(ROWS[column].dtype)
        return {
            "name": column,
            "shape": [len(rows)],
            "datatype": "FP64" if numeric else "BYTES",
            "data": rows[column].tolist(),
        }

    return {"id": "req-1", "inputs": [tensor(c) for c in rows.columns]}


def test_every_protocol_round_trips_and_agrees_with_batch_prediction(
    server: tuple[httpx.Client, Path, Path], tmp_path: Path
) -> None:
    client, registry, _ = server
    expected = batch_scores(registry, tmp_path)
    split = {"dataframe_split": {"columns": list(ROWS.columns), "data": SENT.values.tolist()}}
    answers = {
        "split": client.post("/invocations", json=split),
        "records": client.post("/invocations", json={"dataframe_records": records()}),
        "csv": client.post("/invocations", content=ROWS.to_csv(index=False), headers={"content-type": "text/csv"}),
        "predict": client.post("/predict", json={"records": records()}),
    }
    for how, response in answers.items():
        assert response.status_code == 200, (how, response.text)
        body = response.json()
        assert (body["model_name"], body["model_version"]) == ("credit", 1)
        got = pd.DataFrame(body["predictions"])
        assert got["prediction"].tolist() == expected["prediction"].tolist(), how
        np.testing.assert_allclose(got["proba_bad"], expected["proba_bad"], atol=1e-6, err_msg=how)
    v2 = client.post("/v2/models/credit/infer", json=v2_request(SENT))
    assert v2.status_code == 200, v2.text
    body = v2.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("credit", "1", "req-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["prediction"]["data"] == expected["prediction"].tolist()
    assert outputs["proba_bad"]["shape"] == [len(ROWS)] and outputs["proba_bad"]["datatype"] == "FP64"
    np.testing.assert_allclose(outputs["proba_bad"]["data"], expected["proba_bad"], atol=1e-6)


def test_status_routes_and_metrics(server: tuple[httpx.Client, Path, Path]) -> None:
    client, _, _ = server
    assert client.get("/ping").status_code == 200
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/version").json()["models"]["credit"] is not None
    health = client.get("/health").json()
    assert health["default_model"] == "credit" and health["models"][0]["name"] == "credit"
    meta = client.get("/v2/models/credit").json()
    assert [i["name"] for i in meta["inputs"]] == [c for c in ROWS.columns]
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "proba_bad"]
    client.post("/predict", json=records(2))
    text = client.get("/metrics").text
    assert 'tabml_requests_total{route="/predict",status="200"}' in text
    assert 'tabml_model_version{model="credit"}' in text and "tabml_request_latency_seconds_bucket" in text


def bad_cases() -> list[tuple[str, str, object, str, int, tuple[int | None, str] | None]]:
    """(what, route, body, content type, status, (row, column) named)."""
    three = records(3)
    not_numeric = [dict(r) for r in three]
    not_numeric[2]["Age"] = "forty"
    not_boolean = [dict(r) for r in three]
    not_boolean[1]["Records"] = "maybe"
    missing_key = [dict(r) for r in three]
    del missing_key[1]["Income"]
    without_column = [{k: v for k, v in r.items() if k != "Price"} for r in three]
    split = {"columns": list(ROWS.columns), "data": SENT.head(2).values.tolist()}
    split["data"][1] = split["data"][1][:-1]
    v2 = v2_request(SENT.head(3))
    v2["inputs"][0]["data"] = v2["inputs"][0]["data"][:2]  # type: ignore[index]
    return [
        ("not a number", "/predict", not_numeric, "application/json", 422, (2, "Age")),
        ("not a boolean", "/invocations", {"dataframe_records": not_boolean}, "application/json", 422, (1, "Records")),
        ("a record without a key", "/predict", missing_key, "application/json", 422, (1, "Income")),
        ("a column missing", "/predict", without_column, "application/json", 422, (None, "Price")),
        ("a short split row", "/invocations", {"dataframe_split": split}, "application/json", 422, (1, "*")),
        ("ragged V2 tensors", "/v2/models/credit/infer", v2, "application/json", 422, None),
        ("not JSON", "/predict", b"{nope", "application/json", 400, None),
        ("no known key", "/invocations", {"instances": [1]}, "application/json", 400, None),
        ("an unknown content type", "/invocations", b"a,b", "text/plain", 415, None),
        ("an empty list", "/predict", [], "application/json", 400, None),
        ("an unknown model", "/v2/models/nope/infer", v2_request(SENT.head(1)), "application/json", 404, None),
    ]


@pytest.mark.parametrize("case", bad_cases(), ids=lambda c: c[0])
def test_a_bad_request_gets_a_4xx_naming_row_and_column(server: tuple[httpx.Client, Path, Path], case: tuple) -> None:
    client, _, _ = server
    _, route, body, content_type, status, named = case
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    response = client.post(route, content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"]
    if named is not None:
        assert {"row": named[0], "column": named[1]}.items() <= answer["problems"][0].items(), answer


def test_out_of_range_numbers_and_unknown_levels_are_scored_with_warnings_naming_them(
    server: tuple[httpx.Client, Path, Path],
) -> None:
    client, _, _ = server
    rows = records(2)
    rows[1]["Age"], rows[0]["Home"] = 400, "castle"
    response = client.post("/predict", json=rows)
    assert response.status_code == 200, response.text
    warned = [(w["row"], w["column"]) for w in response.json()["warnings"]]
    assert warned == [(1, "Age"), (0, "Home")]
    assert 'tabml_input_warnings_total{column="Age",model="credit"} 1.0' in client.get("/metrics").text


def test_scored_rows_reach_the_prediction_log(server: tuple[httpx.Client, Path, Path]) -> None:
    client, _, root = server
    assert client.post("/predict", json=records(7)).status_code == 200
    deadline, logged = time.monotonic() + 10, pd.DataFrame()
    while time.monotonic() < deadline and len(logged) < 7:
        logged = read_window(root / "predictions", "credit")
        time.sleep(0.2)
    assert len(logged) >= 7
    assert {"Age", "Home", "_prediction", "_proba_bad", VERSION} <= set(logged.columns)


def request_loop(client: httpx.Client, until: float, stop_at_version: int) -> tuple[list[int], list[str]]:
    """One-row requests until `stop_at_version` answers (or `until`); the versions seen, and any failures."""
    versions, failures, row = [], [], records(1)
    while time.monotonic() < until:
        response = client.post("/predict", json=row)
        if response.status_code != 200:
            failures.append(f"{response.status_code}: {response.text}")
            continue
        versions.append(response.json()["model_version"])
        if versions[-1] == stop_at_version:
            break
    return versions, failures


def test_a_promotion_and_a_rollback_are_served_within_seconds_without_a_failed_request(
    server: tuple[httpx.Client, Path, Path],
) -> None:
    client, registry, _ = server
    before = client.get("/version").json()["models"]["credit"]
    new = publish_copy(registry, of=before)
    promote_to_production(registry, new)
    versions, failures = request_loop(client, time.monotonic() + 5, new)
    assert failures == []
    assert versions[-1] == new and set(versions) <= {before, new}
    assert client.get("/health").json()["models"][0]["version"] == new
    rollback(registry, "credit", lock_timeout=10)
    versions, failures = request_loop(client, time.monotonic() + 5, before)
    assert failures == [] and versions[-1] == before


def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(
    server: tuple[httpx.Client, Path, Path],
) -> None:
    client, registry, _ = server
    serving = client.get("/version").json()["models"]["credit"]
    bad = publish_copy(registry, of=serving)
    weights = registry / "credit" / "versions" / f"v{bad}" / "model_config.json"
    weights.write_text(weights.read_text().replace("{", '{"x": 1, ', 1))
    promote_to_production(registry, bad)
    deadline, refused = time.monotonic() + 5, None
    while time.monotonic() < deadline and not refused:
        refused = client.get("/health").json()["models"][0]["refused"]
        time.sleep(0.1)
    assert refused is not None and refused["version"] == bad
    assert "sha256 does not match MANIFEST.json" in refused["reason"] and "model_config.json" in refused["reason"]
    assert client.get("/health").json()["status"] == "degraded"
    response = client.post("/predict", json=records(2))
    assert response.status_code == 200 and response.json()["model_version"] == serving


def test_the_server_refuses_to_start_without_a_version_it_can_serve(tmp_path: Path) -> None:
    import subprocess
    import sys

    registry, params = fixture_registry(tmp_path), serve_params(tmp_path)
    state = registry / "credit" / "versions" / "v1" / "preprocess_state.json"
    state.write_text(state.read_text().replace('"good"', '"fine"'))
    command = [sys.executable, "-m", "tabml.serve", "--params", str(params), "--registry-dir", str(registry)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 65
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("[serve]")]
    assert line.startswith(f"[serve] FAILED: credit in {registry} cannot be served: RegistryError: ")
    assert "preprocess_state.json" in line and "register or promote a version" in line
