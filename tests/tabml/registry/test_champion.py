import json
from pathlib import Path

import numpy as np
import pytest

from tabml.core.params import Params
from tabml.data.processed import read_state, split_rows
from tabml.data.snapshot import read_accepted
from tabml.evaluation.scorer import Scorer, load_scorer
from tabml.evaluation.slices import slice_groups
from tabml.registry.champion import champion_evidence, compare, production_scorer
from tabml.registry.gate import ChampionEvidence, ChampionUnavailable
from tabml.registry.store import publish
from tests.registry_project import build_project, fit_model


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Params]:
    root = tmp_path_factory.mktemp("champion") / "credit"
    return root, build_project(root)


def scorer(root: Path, params: Params, features: str) -> Scorer:
    model = fit_model(root, params, features)
    return load_scorer(model, read_state(root / params.preprocess.out_dir), 0.4)


def frozen_test_frame(params: Params, root: Path):  # noqa: ANN201
    table = read_accepted(root / params.preprocess.input)
    return split_rows(root / params.preprocess.out_dir, table, "test", params.preprocess.input)


def test_both_models_are_scored_on_the_raw_rows_with_their_own_state(credit: tuple[Path, Params]) -> None:
    root, params = credit
    good, weak = scorer(root, params, "all"), scorer(root, params, "weak")
    frame = frozen_test_frame(params, root)
    groups = slice_groups(frame, ["Home"], 100)
    evidence = compare(good, weak, 3, frame, "auroc", groups, params.register_.champion)
    assert isinstance(evidence, ChampionEvidence) and evidence.version == 3
    assert evidence.challenger > evidence.champion and evidence.interval.low > 0
    assert [(s.column, s.value) for s in evidence.slices] == [("Home", "owner"), ("Home", "rent"), ("Home", "parents")]
    assert all(s.challenger is not None and s.champion is not None for s in evidence.slices)


def test_a_champion_that_cannot_be_compared_says_why(credit: tuple[Path, Params]) -> None:
    root, params = credit
    good = scorer(root, params, "all")
    frame = frozen_test_frame(params, root)
    p = params.register_.champion
    relabelled = Scorer(good.net, good.state.model_copy(update={"labels": ["no", "yes"]}), 0.5)
    other_task = Scorer(good.net, good.state.model_copy(update={"task": "regression", "labels": None}), None)
    cases = [
        (relabelled, "its labels ['no', 'yes'] differ from this model's ['good', 'bad']", frame),
        (other_task, "it is a regression model and this one is binary", frame),
        (good, "the test rows lack its input columns ['Age']", frame.drop(columns=["Age"])),
    ]
    for champion, reason, rows in cases:
        assert compare(good, champion, 2, rows, "auroc", {}, p) == ChampionUnavailable(2, reason)


def test_no_production_or_an_unreadable_production_package(credit: tuple[Path, Params], tmp_path: Path) -> None:
    root, params = credit
    good = scorer(root, params, "all")
    registry_dir = tmp_path / "registry"
    frame = frozen_test_frame(params, root)
    assert champion_evidence(registry_dir, "credit", good, frame, "auroc", {}, params.register_.champion) is None
    model = root / params.train.out_dir
    old_state = tmp_path / "preprocess_state.json"
    old_state.write_text(json.dumps({"task": "binary", "numeric": [{"name": "Age"}]}))  # an older format
    (root / "m.json").write_text(json.dumps({"threshold": 0.4}))
    files = {
        "model.safetensors": model / "model.safetensors",
        "model_config.json": model / "model_config.json",
        "preprocess_state.json": old_state,
        "metrics.json": root / "m.json",
    }
    publish(registry_dir, "credit", files, lambda v: {}, {"auroc": 0.8}, stage="production", lock_timeout=5)
    version, reason = production_scorer(registry_dir, "credit")  # type: ignore[misc]
    assert version == 1 and isinstance(reason, str) and reason.startswith("its package cannot be loaded by this code")
    evidence = champion_evidence(registry_dir, "credit", good, frame, "auroc", {}, params.register_.champion)
    assert isinstance(evidence, ChampionUnavailable) and evidence.version == 1
    assert np.isfinite(good.scores(frame)).all()
