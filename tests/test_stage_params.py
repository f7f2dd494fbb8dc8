"""dvc.yaml's stages declare the params that shape their outputs, key by key, and nothing operational.

A key left out must be one that cannot change what the stage writes (an output path, where it runs, a lock wait,
another command's settings); anything else left out would let `dvc repro` reuse a stale output. Whole sections are
not declared, so `dvc exp show` has no column for settings that cannot change a result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from tabml.core.params import (
    EvaluateParams,
    IngestParams,
    PreprocessParams,
    RegisterParams,
    TrainParams,
    ValidateParams,
)
from tabml.training.resume import PLACEMENT_PARAMS

PROJECT = Path(__file__).resolve().parents[1]
SECTIONS: dict[str, type[BaseModel]] = {
    "ingest": IngestParams,
    "validate": ValidateParams,
    "preprocess": PreprocessParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "register": RegisterParams,
}
NOT_SHAPING = {  # section key -> why a change to it need not rerun its stage
    "ingest": {"snapshot", "report"},  # outs
    "validate": {"report", "data_docs", "quarantine_dir"},  # outs; where a rejected snapshot is kept
    "preprocess": {"input", "out_dir"},  # a dep and an out
    "train": set(PLACEMENT_PARAMS),  # where and how often it runs and checkpoints, not what it learns
    "evaluate": {"out_dir", "metrics"},  # outs
    "register": {"record", "gate_report", "reproduce", "lock_timeout_seconds"},  # outs; tabml.reproduce's; a wait
}


def declared(stage: str) -> list[str]:
    return [str(p) for p in yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"][stage].get("params", [])]


@pytest.mark.parametrize("stage", sorted(SECTIONS))
def test_a_stage_declares_every_key_of_its_section_that_shapes_its_output(stage: str) -> None:
    keys = {p.split(".", 1)[1] for p in declared(stage) if p.startswith(f"{stage}.")}
    assert keys == set(SECTIONS[stage].model_fields) - NOT_SHAPING[stage]


def test_no_stage_declares_a_whole_operational_section() -> None:
    for stage in SECTIONS:
        whole = [p for p in declared(stage) if "." not in p]
        assert whole in ([], ["data"]), f"{stage} declares whole sections {whole}"
        assert not [p for p in declared(stage) if p.split(".")[0] in {"tracking", "orchestration"}]
