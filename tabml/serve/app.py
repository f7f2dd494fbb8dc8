"""The FastAPI app: MLflow scoring, Open Inference Protocol V2, /predict, health, version and metrics routes.

Every scoring route goes through `ScoringService.score`: the model line's current version, the row checks
(tabml.serve.checks), the micro-batcher, the prediction log. A refused request answers 4xx JSON naming the rows
and columns; an unexpected fault answers 500 JSON with one line (a bug to report), never an HTML page.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from tabml.core.ops_params import ServeParams
from tabml.predict.prediction_log import PredictionLog
from tabml.serve.batching import MicroBatcher, Predictions
from tabml.serve.encoding import encode
from tabml.serve.models import LoadedModel, Reloader, ServedModels
from tabml.serve.protocols import RequestError, Table, mlflow_table, output_records, predict_table, v2_outputs, v2_table
from tabml.serve.telemetry import ServerMetrics, access_line, access_logger

Handler = Callable[[], Awaitable[tuple[dict[str, Any], LoadedModel | None, int | None]]]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")


@dataclass
class ScoringService:
    """What the routes share: the served models, the batcher, the log, the metrics."""

    models: ServedModels
    default_name: str
    p: ServeParams
    batcher: MicroBatcher
    metrics: ServerMetrics
    log: PredictionLog | None

    def model(self, name: str) -> LoadedModel:
        model = self.models.get(name)
        if model is not None:
            return model
        line = self.models.lines.get(name)
        if line is None:
            raise RequestError(404, f"no model line {name!r} is served (served: {sorted(self.models.lines)})")
        raise RequestError(503, f"{name} has no version that could be loaded: {line.refused}")

    async def score(self, name: str, table: Table) -> tuple[LoadedModel, list[dict[str, Any]], Predictions, list]:
        """Check, encode, score (micro-batched) and log one request: (model, records, columns, warnings)."""
        model = self.model(name)
        if table.rows > self.p.max_request_rows:
            raise RequestError(413, f"{table.rows} rows in one request; at most serve.max_request_rows")
        state = model.scorer.state
        encoded = encode(table.columns, table.rows, model.plan)
        if encoded.errors:
            what = f"{len(encoded.errors)} problem(s) with the input for {name} v{model.version}"
            raise RequestError(422, what, encoded.errors)
        for w in encoded.warnings:
            self.metrics.warnings.labels(name, w.column).inc()
        self.batcher.arriving -= 1
        try:
            out = await self.batcher.score(model, encoded.arrays)
        finally:
            self.batcher.arriving += 1
        self.metrics.rows.labels(name).inc(table.rows)
        if self.log is not None:
            self.log.append(model.name, model.version, table.columns, out, state.id_column)
        ids = table.columns.get(state.id_column) if state.id_column else None
        return model, output_records(ids, state.id_column, out), out, [w.as_json() for w in encoded.warnings]

    async def respond(self, route: str, request: Request, handler: Handler) -> Response:
        """Run one route: time it, count it, turn refusals into 4xx JSON, log one line."""
        started, model, rows = time.perf_counter(), None, None
        self.batcher.arriving += 1
        try:
            body, model, rows = await handler()
            status = 200
        except RequestError as exc:
            status, body = exc.status, exc.body()
        except Exception as exc:  # noqa: BLE001 - a bug: still one JSON line, never a traceback page
            status, body = 500, {"error": f"internal error: {type(exc).__name__}: {exc}", "problems": []}
        finally:
            self.batcher.arriving -= 1
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        if status >= 400:
            self.metrics.errors.labels(route, str(status)).inc()
        name, version = (model.name, model.version) if model else (None, None)
        access_logger().info(access_line(request.method, route, status, elapsed, name, version, rows))
        return json_response(body, status)

    def sync_gauges(self) -> None:
        for name, line in self.models.lines.items():
            self.metrics.version.labels(name).set(line.current.version if line.current else 0)
            refused = line.refused.get("version") if line.refused else None
            self.metrics.refused.labels(name).set(refused if isinstance(refused, int) else 0)
        if self.log is not None:
            self.metrics.log_dropped.set(self.log.dropped)
            self.metrics.log_written.set(self.log.written)
        self.metrics.batches.set(self.batcher.batches)


def create_app(service: ScoringService) -> FastAPI:
    """The app over one service; the reloader runs for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reloader = Reloader(service.models, service.p.reload_interval_seconds)
        reloader.start()
        try:
            yield
        finally:
            reloader.stop()
            service.batcher.close()
            if service.log is not None:
                service.log.close()

    app = FastAPI(title="tabml serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    add_scoring_routes(app, service)
    add_status_routes(app, service)
    return app


def add_scoring_routes(app: FastAPI, s: ScoringService) -> None:
    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        async def handle() -> tuple[dict[str, Any], LoadedModel | None, int | None]:
            table = mlflow_table(await request.body(), request.headers.get("content-type", ""))
            model, records, _, warnings = await s.score(s.default_name, table)
            body = {"predictions": records, "model_name": model.name, "model_version": model.version}
            return {**body, "warnings": warnings} if warnings else body, model, table.rows

        return await s.respond("/invocations", request, handle)

    @app.post("/predict")
    async def predict(request: Request, model: str | None = None) -> Response:
        async def handle() -> tuple[dict[str, Any], LoadedModel | None, int | None]:
            table = predict_table(await request.body())
            used, records, _, warnings = await s.score(model or s.default_name, table)
            body = {"model_name": used.name, "model_version": used.version, "predictions": records}
            return {**body, "warnings": warnings} if warnings else body, used, table.rows

        return await s.respond("/predict", request, handle)

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        async def handle() -> tuple[dict[str, Any], LoadedModel | None, int | None]:
            table, request_id = v2_table(await request.body())
            model, _, out, warnings = await s.score(name, table)
            body: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version)}
            body["outputs"] = v2_outputs(out)
            if request_id is not None:
                body["id"] = request_id
            if warnings:
                body["parameters"] = {"warnings": warnings}
            return body, model, table.rows

        return await s.respond("/v2/models/{name}/infer", request, handle)


def add_status_routes(app: FastAPI, s: ScoringService) -> None:
    def served() -> dict[str, int | None]:
        return {name: line.current.version if line.current else None for name, line in s.models.lines.items()}

    @app.get("/ping")
    async def ping() -> Response:
        return Response("\n", 200 if s.models.get(s.default_name) else 503, media_type="text/plain")

    @app.get("/health")
    async def health() -> Response:
        lines = [line.health() for line in s.models.lines.values()]
        ok = s.models.get(s.default_name) is not None
        status = "ok" if ok and not any(line["refused"] for line in lines) else "degraded" if ok else "unavailable"
        return json_response({"status": status, "default_model": s.default_name, "models": lines}, 200 if ok else 503)

    @app.get("/version")
    async def version() -> Response:
        return json_response({"tabml": package_version("tabml"), "models": served()})

    @app.get("/v2/health/live")
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        ok = bool(s.models.lines) and all(v is not None for v in served().values())
        return json_response({"ready": ok}, 200 if ok else 503)

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> Response:
        try:
            model = s.model(name)
        except RequestError as exc:
            return json_response(exc.body(), exc.status)
        kinds = {"numeric": "FP64", "datetime": "BYTES", "boolean": "BYTES", "categorical": "BYTES", "text": "BYTES"}
        state = model.scorer.state
        inputs = [{"name": c.name, "datatype": kinds.get(c.kind, "BYTES"), "shape": [-1]} for c in state.input_schema]
        outputs = [{"name": "prediction", "datatype": "FP64" if state.task == "regression" else "BYTES", "shape": [-1]}]
        outputs += [{"name": f"proba_{label}", "datatype": "FP64", "shape": [-1]} for label in (state.labels or [])]
        if state.task == "binary" and state.labels:
            outputs = outputs[:1] + [o for o in outputs[1:] if o["name"] == f"proba_{state.labels[1]}"]
        body = {"name": name, "versions": [str(model.version)], "platform": "tabml", "inputs": inputs}
        return json_response({**body, "outputs": outputs})

    @app.get("/metrics")
    async def metrics() -> Response:
        s.sync_gauges()
        return Response(s.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
