"""Process environment the pipeline needs: telemetry off, caches inside the project."""

from __future__ import annotations

import os

TELEMETRY_OFF = {
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "WANDB_CONSOLE": "off",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_telemetry() -> None:
    """Switch off every library's phone-home; explicit user settings win."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
