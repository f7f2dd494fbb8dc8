"""The loop closed end to end: a real scoring server logs shifted traffic, the monitor flow (against a real local
Prefect server) sees the drift and starts one run of the training deployment, and not a second within the cooldown.

The training deployment is a real deployment of the real training flow on a work pool no worker polls, so its run
is created and waits (Scheduled); nothing trains here."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from flows.deploy import main as deploy_main
from flows.monitor import deploy_monitor, monitor
from tabml.core.params import load_params
from tabml.predict.prediction_log import read_window
from tabml.validation.reference import derive_reference
from tabml.validation.report import reference_path, write_reference
from tests.flows.conftest import PrefectServer
from tests.serve_process import PROJECT, fixture_registry, running_server, serve_params
from tests.workspace import EXAMPLE_TABLE

pytestmark = pytest.mark.slow
DEPLOYMENT = "monitor-e2e"


def project(root: Path) -> Path:
    """params.yaml (log, registry, reference under root; a deployment on a pool nobody polls), registry, reference."""
    params_file = serve_params(root, log_flush_seconds=0.2)
    raw = yaml.safe_load(params_file.read_text())
    raw["orchestration"]["deployment"].update(name=DEPLOYMENT, work_pool="tabml-monitor-e2e", cron=None)
    raw["monitor"].update(min_rows=100, deployment=f"training-pipeline/{DEPLOYMENT}", deployment_name="monitor-e2e")
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(params_file)
    fixture_registry(root)
    table = pd.read_csv(EXAMPLE_TABLE)
    write_reference(
        derive_reference(table, params.data, params.validate_, "credit.csv"),
        reference_path(root / params.validate_.reference_dir, params.data.name),
    )
    (root / "flows").mkdir()
    for module in ("pipeline.py", "monitor.py"):
        shutil.copy(PROJECT / "flows" / module, root / "flows" / module)
    return params_file


def shifted_rows(n: int) -> list[dict[str, object]]:
    """The credit applicants of a richer, older population asking for more (nulls as JSON null)."""
    frame = pd.read_csv(EXAMPLE_TABLE).drop(columns=["Status"]).sample(n, random_state=1)
    frame = frame.assign(Income=frame["Income"] * 4, Amount=frame["Amount"] * 3, Age=frame["Age"] + 25)
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def flow_runs_of(api: httpx.Client, deployment_id: str) -> list[dict]:
    return api.post("/flow_runs/filter", json={"deployments": {"id": {"any_": [deployment_id]}}}).json()


def test_shifted_traffic_triggers_one_training_run_then_the_cooldown_holds(
    use_prefect_api: PrefectServer, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    params_file = project(root)
    assert deploy_main(["--root", str(root), "deploy"]) == 0
    api = httpx.Client(base_url=use_prefect_api.api_url, timeout=30)
    training = api.get(f"/deployments/name/training-pipeline/{DEPLOYMENT}").json()

    with running_server(root / "registry", params_file) as client:
        rows = shifted_rows(300)
        for start in range(0, len(rows), 50):
            response = client.post("/predict", json=rows[start : start + 50])
            assert response.status_code == 200, response.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(read_window(root / "predictions", "credit")) < 300:
            time.sleep(0.2)
    assert len(read_window(root / "predictions", "credit")) == 300

    first = monitor(root=str(root))
    assert first["retrain"] and first["rows"] == 300
    assert any("features drifted" in reason for reason in first["reasons"])
    drifted = {f["column"] for f in first["features"] if f["drifted"]}
    assert {"Income", "Amount", "Age"} <= drifted and "Home" not in drifted
    (run,) = flow_runs_of(api, training["id"])
    assert run["id"] == first["triggered_flow_run"] and run["state"]["type"] == "SCHEDULED"
    batch = Path(run["parameters"]["data_path"])
    assert batch.is_file() and len(pd.read_csv(batch)) == 300
    assert (root / "reports" / "monitor.html").read_text().count("<tr class=drift>") >= 3
    artifacts = api.post("/artifacts/filter", json={"artifacts": {"key": {"any_": ["monitor-credit"]}}}).json()
    assert artifacts and "retraining triggered" in artifacts[0]["data"]

    second = monitor(root=str(root))
    assert not second["retrain"] and second["reasons"] and "cooldown" in second["held_back"]
    assert len(flow_runs_of(api, training["id"])) == 1


def test_the_monitor_deploys_on_a_cron_beside_the_training_deployment(
    use_prefect_api: PrefectServer, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    params = load_params(project(root))
    deploy_monitor(root, params)
    deployment = httpx.get(f"{use_prefect_api.api_url}/deployments/name/model-monitor/monitor-e2e").json()
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 * * * *"]
    assert deployment["work_pool_name"] == "tabml-monitor-e2e" and deployment["parameters"]["root"] == str(root)


def test_labels_that_arrive_give_live_performance_and_a_drop_triggers_with_the_labelled_batch(
    tmp_path: Path,
) -> None:
    """A model line with an id column; the logged rows' labels arrive later, mostly flipped: the live metric falls."""
    from contextlib import chdir
    from datetime import UTC, datetime

    import numpy as np

    from flows.monitor import run_monitor
    from tabml.predict.batch import predict_file
    from tabml.predict.prediction_log import PredictionLog
    from tasks import register
    from tests.registry_project import build_project, evaluated

    root = tmp_path / "credit"
    table = pd.read_csv(EXAMPLE_TABLE)
    table.insert(0, "loan_id", [f"L{i:05d}" for i in range(len(table))])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        params = build_project(root, table, id_column="loan_id")
        with chdir(root):
            register.run(evaluated(root, params, features="all"))
    write_reference(
        derive_reference(table, params.data, params.validate_, "credit.csv"),
        reference_path(root / params.validate_.reference_dir, "credit"),
    )
    rows = table.sample(400, random_state=3)
    rows.drop(columns=["Status"]).to_csv(tmp_path / "traffic.csv", index=False)
    log = PredictionLog.from_params(params.serve, root / params.serve.log_dir)
    predict_file(root / "registry", "credit", tmp_path / "traffic.csv", tmp_path / "scored.csv", log=log)
    log.close()
    flipped = rows[["loan_id", "Status"]].copy()
    flip = np.random.default_rng(0).random(len(flipped)) < 0.6
    flipped.loc[flip, "Status"] = flipped.loc[flip, "Status"].map({"good": "bad", "bad": "good"})
    flipped.to_csv(root / "labels.csv", index=False)
    monitored = params.model_copy(
        update={"monitor": params.monitor.model_copy(update={"labels_path": Path("labels.csv"), "min_rows": 100})}
    )
    calls: list[tuple[str, dict]] = []
    found = run_monitor(root, monitored, datetime.now(UTC), lambda d, p: calls.append((d, p)) or "run-1")
    live = found["live"]
    assert live["metric"] == "auroc" and live["rows"] == 400 and live["low"] <= live["value"] <= live["high"]
    assert live["registered"] is not None and live["value"] < live["registered"] - params.monitor.max_metric_drop
    assert found["retrain"] and any(r.startswith("live auroc") for r in found["reasons"])
    ((deployment, parameters),) = calls
    assert deployment == params.monitor.deployment
    batch = pd.read_csv(parameters["data_path"])
    assert len(batch) == 400 and "Status" in batch and batch["Status"].isin(["good", "bad"]).all()
