"""Start the scoring server: `python -m tabml.serve` (make serve), bound to `serve.host`:`serve.port`.

    python -m tabml.serve [--port 8080] [--host 127.0.0.1] [--registry-dir registry] [--name credit] [--params P]

It refuses to start (one line, exit 65) when the default model line (data.name) has no production version that
loads and verifies; once up it never stops serving a good version because a newer one is bad.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabml.core.env import quiet_telemetry
from tabml.core.errors import ExitCode
from tabml.core.ops_params import ServeParams
from tabml.core.params import DEFAULT_PARAMS, ParamsError, load_params
from tabml.predict.prediction_log import PredictionLog
from tabml.serve.app import ScoringService, create_app
from tabml.serve.batching import MicroBatcher
from tabml.serve.checks import Policy
from tabml.serve.models import ServedModels
from tabml.serve.telemetry import ServerMetrics


def build_service(registry_dir: Path, name: str, p: ServeParams, log_dir: Path | None) -> ScoringService:
    """The served models (loaded once now), the batcher, the metrics and the prediction log."""
    import torch

    torch.set_num_threads(p.cpu_threads)
    models = ServedModels(registry_dir, Policy.of(p))
    models.refresh()
    log = PredictionLog.from_params(p, log_dir) if p.log_sample_rate > 0 else None
    batcher = MicroBatcher(p.batch_window_ms, p.max_batch)
    service = ScoringService(models, name, p, batcher, ServerMetrics(), log)
    return service


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tabml.serve", description="Serve the production models.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--host", help="default: serve.host")
    parser.add_argument("--port", type=int, help="default: serve.port")
    parser.add_argument("--registry-dir", type=Path, help="default: register.registry_dir")
    parser.add_argument("--name", help="the model line /invocations and /predict score with (default: data.name)")
    parser.add_argument("--log-dir", type=Path, help="prediction log folder (default: serve.log_dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    quiet_telemetry()
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"[serve] FAILED: {exc}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    name = args.name or params.data.name
    registry_dir = args.registry_dir or params.register_.registry_dir
    service = build_service(registry_dir, name, params.serve, args.log_dir)
    if service.models.get(name) is None:
        line = service.models.lines.get(name)
        why = line.refused["reason"] if line and line.refused else "no production version"
        print(
            f"[serve] FAILED: {name} in {registry_dir} cannot be served: {why}; "
            "what to do: register or promote a version (`python -m tabml.registry list`)",
            file=sys.stderr,
        )
        return int(ExitCode.BAD_INPUT)
    host, port = args.host or params.serve.host, args.port or params.serve.port
    served = ", ".join(f"{n} v{line.current.version}" for n, line in service.models.lines.items() if line.current)
    print(f"[serve] {served} on http://{host}:{port} (registry {registry_dir})", file=sys.stderr, flush=True)
    config = uvicorn.Config(create_app(service), host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
    return 0
