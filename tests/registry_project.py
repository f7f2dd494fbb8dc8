"""A real project for register / predict tests, built in seconds: real preprocess and evaluate stages, a real
git repo, and networks whose weights are set to a fitted linear model (no Lightning), so their quality is
known: `features="all"` is a good model, `features="weak"` uses three numeric columns only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import chdir
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from tabml.core.params import Params, load_params
from tabml.data.processed import load_split, load_state, split_path
from tabml.training.model import TabularNet
from tabml.training.model_config import ModelConfig
from tabml.training.trained_model import save_model
from tabml.validation.reference import derive_reference
from tabml.validation.report import write_reference
from tasks import evaluate, preprocess, train
from tests.workspace import EXAMPLE_PARAMS, EXAMPLE_TABLE

PROJECT = Path(__file__).resolve().parents[1]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def build_project(root: Path, table: pd.DataFrame | None = None, **data: object) -> Params:
    """params.yaml + dvc.yaml + the table where preprocess reads it, preprocessed, in a committed git repo."""
    root.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((EXAMPLE_PARAMS).read_text())
    raw["data"].update(data)
    raw["register"]["baselines"] = {"majority": 0.0, "linear": 0.25}  # a linear stand-in need not beat linear
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    shutil.copy(PROJECT / "dvc.yaml", root / "dvc.yaml")
    params = load_params(root / "params.yaml")
    frame = table if table is not None else pd.read_csv(EXAMPLE_TABLE)
    for snapshot in {params.ingest.snapshot, params.preprocess.input}:
        (root / snapshot).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(root / snapshot, index=False)
    expectations = root / params.validate_.reference_dir / params.data.name / "expectations.json"
    expectations.parent.mkdir(parents=True, exist_ok=True)
    reference = derive_reference(frame, params.data, params.validate_, snapshot=str(params.preprocess.input))
    write_reference(reference, expectations)
    with chdir(root):
        preprocess.run(params)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Registry Test")
    git(root, "config", "user.email", "registry@example.invalid")
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {}}))
    (root / ".gitignore").write_text("/registry/\n/models/\n/data/\n/reports/\n/.wandb/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    return params


def fit_model(root: Path, params: Params, features: str = "all", seed: int = 0) -> Path:
    """A TabularNet equal to a linear model fitted on the numeric inputs; written where train writes."""
    from sklearn.linear_model import LogisticRegression, Ridge

    processed = root / params.preprocess.out_dir
    state = load_state(processed)
    data = load_split(split_path(processed, "train"))
    x = data.x_num if features == "all" else data.x_num[:, :6]  # weak: Seniority, Time, Age only
    torch.manual_seed(seed)
    config = train.net_config(state, params.train.model_copy(update={"model": "mlp"}))
    config["clip_columns"] = []  # the linear model is fitted on the inputs as they are
    net = TabularNet(ModelConfig.model_validate(config)).eval()
    if state.task == "regression":
        fitted = Ridge(alpha=1.0).fit(x, (data.y - state.target_mean) / state.target_std)
        coef, intercept = np.atleast_2d(fitted.coef_), np.atleast_1d(fitted.intercept_)
    else:
        fitted = LogisticRegression(max_iter=2000).fit(x, data.y)
        coef, intercept = fitted.coef_, fitted.intercept_
    with torch.no_grad():
        for layer in net.mlp:
            if isinstance(layer, torch.nn.Linear):
                last = layer
        last.weight.zero_()
        last.bias.zero_()
        net.wide.weight.zero_()
        net.wide.weight[:, : x.shape[1]] = torch.as_tensor(coef, dtype=torch.float32)
        net.wide.bias[:] = torch.as_tensor(intercept, dtype=torch.float32)
    out = root / params.train.out_dir

    save_model(net, out)
    (out / "history.csv").write_text("epoch,train_loss,val_loss\n0,0.7,0.69\n")
    (out / "run_info.json").write_text(json.dumps({"wandb_run_id": None, "seed": seed}))
    return out


def evaluated(root: Path, params: Params, features: str = "all", seed: int = 0) -> Params:
    """fit_model, then the real evaluate stage."""
    fit_model(root, params, features, seed)
    with chdir(root):
        evaluate.run(params)
    return params
