"""The operational sections of params.yaml: W&B tracking and how the Prefect flows run (retries, locks, publishing,
notices, the deployment). Every value lives in params.yaml; nothing here has a default of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackingParams(Section):
    project: str
    mode: Literal["offline", "online", "disabled"]
    dir: Path


class LauncherParams(Section):
    """What starts the train stage's ranks: the stage itself (none), torchrun or srun, with their arguments."""

    kind: Literal["none", "torchrun", "srun"]
    args: list[str]  # before the module: ["--nnodes", "2", "--nproc_per_node", "4"]; a node's rank and the
    # master address come from the environment the cluster sets (PET_NODE_RANK, PET_MASTER_ADDR; SLURM_*)


class StagePolicy(Section):
    """Retries and timeout of one flow step (a dvc.yaml stage, or `publish`)."""

    retries: int = Field(ge=0)
    retry_delay_seconds: float = Field(ge=0)
    retry_backoff: float = Field(ge=1)  # each wait is this many times the one before
    timeout_seconds: float | None = Field(gt=0)  # null: no timeout

    def retry_delays(self) -> list[float]:
        """Seconds to wait before each retry: 5, 10, 20, ... for delay 5 and backoff 2."""
        return [self.retry_delay_seconds * self.retry_backoff**attempt for attempt in range(self.retries)]


GIT_REMOTE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
WORK_POOL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # also the name of the pool's stage-flow deployment


class StageOverride(Section):
    """What one stage changes of `orchestration.stage_defaults`, and where it runs."""

    retries: int | None = Field(default=None, ge=0)
    retry_delay_seconds: float | None = Field(default=None, ge=0)
    retry_backoff: float | None = Field(default=None, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)
    # the work pool whose worker runs this stage (a flow run of the `tabml-stage` deployment there, docs/scale-out.md
    # section 5); null or absent: where the flow runs
    work_pool: str | None = Field(default=None, pattern=WORK_POOL_NAME)


class StagePoolParams(Section):
    """Stages sent to another work pool (`stages.<name>.work_pool`): the pools `deploy` makes, how long to wait."""

    work_pool_type: str  # the type of a stage pool `deploy` creates (process | docker | kubernetes)
    pickup_timeout_seconds: float = Field(gt=0)  # no worker of the pool started the stage by then: the run fails


class PublishParams(Section):
    """After a successful run: `dvc push`, then dvc.lock and the git-tracked reports on a run branch."""

    scheduled: bool  # runs started from the deployment
    manual: bool  # `python -m flows.pipeline` / `make run` (--publish turns it on for one run)
    remote: str | None  # DVC remote name; null = the default remote
    branch_prefix: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*/$")
    git_remote: str | None = Field(pattern=GIT_REMOTE_NAME)  # push the run branch there; null = keep it local


class NotifyParams(Section):
    """Where a failed run is reported. The webhook URL is a secret: only the name of its variable lives here."""

    log_file: Path
    webhook_url_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    webhook_timeout_seconds: float = Field(gt=0)


class DeploymentParams(Section):
    """The scheduled deployment of the pipeline flow (`python -m flows.deploy deploy`)."""

    name: str
    work_pool: str
    work_pool_type: str  # process | docker | kubernetes | ...
    cron: str | None  # null = no schedule: runs only when triggered
    timezone: str
    concurrency_limit: int = Field(ge=1)  # runs beyond the limit wait in the queue
    force: bool
    params_overrides: list[str]  # `dvc exp run -S` syntax: ["train.lr=0.003"]
    data_path: str | None  # shorthand for the override data.path=...
    # local: the worker runs in the deploying checkout | git: it clones `git_remote` at the deployed commit into its
    # own working folder and `dvc pull`s what the run needs (docs/scale-out.md)
    source: Literal["local", "git"]
    git_remote: str = Field(pattern=GIT_REMOTE_NAME)  # the git remote (name in the deploying checkout) workers clone


class ReportsServerParams(Section):
    """Where `make server` serves reports/ and dvc_plots/ read-only over HTTP, the run summary's links point there."""

    host: str  # 127.0.0.1: this machine only; another address exposes the reports to the network
    port: int | None = Field(ge=1, le=65535)  # null: not served, the summary names the files' paths instead


class OrchestrationParams(Section):
    lock_timeout_seconds: float = Field(gt=0)  # wait this long for another run on this workspace
    stage_defaults: StagePolicy
    stages: dict[str, StageOverride]  # keys: dvc.yaml stage names and `publish` (checked against dvc.yaml)
    stage_pools: StagePoolParams
    publish: PublishParams
    notify: NotifyParams
    deployment: DeploymentParams
    reports_server: ReportsServerParams

    @model_validator(mode="after")
    def _stage_names_are_names(self) -> OrchestrationParams:
        bad = [key for key in self.stages if not key.replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise ValueError(f"stages: {bad} are not stage names")
        if self.stages.get("publish", StageOverride()).work_pool is not None:
            raise ValueError("stages.publish.work_pool: publishing runs where the flow runs; set it to null")
        return self

    def policy(self, stage: str) -> StagePolicy:
        """`stage_defaults` with the stage's own entries on top."""
        override = self.stages.get(stage)
        if override is None:
            return self.stage_defaults
        return self.stage_defaults.model_copy(update=override.model_dump(exclude_none=True, exclude={"work_pool"}))

    def work_pool(self, stage: str) -> str | None:
        """The pool `stage` is sent to; None: it runs where the flow runs."""
        override = self.stages.get(stage)
        return override.work_pool if override is not None else None

    def stage_work_pools(self) -> list[str]:
        """Every pool a stage is sent to, each once, sorted: `deploy` makes a stage-flow deployment on each."""
        return sorted({pool for stage in self.stages if (pool := self.work_pool(stage)) is not None})

    def unknown_stages(self, known: set[str]) -> list[str]:
        """Keys of `stages` that name no step of the flow (a typo such as `trian`)."""
        return sorted(set(self.stages) - known)


class ServeParams(Section):
    """The online scoring server (`python -m tabml.serve`) and the prediction log it and batch scoring append to."""

    host: str
    port: int = Field(ge=1, le=65535)
    reload_interval_seconds: float = Field(gt=0)  # how often the registry index is looked at for a new production
    batch_window_ms: float = Field(ge=0)  # concurrent requests arriving within this wait are scored as one batch
    max_batch: int = Field(ge=1)  # rows per scored batch at most
    cpu_threads: int = Field(ge=1)  # torch threads of the scorer; more spin-wait against the event loop on few cores
    max_request_rows: int = Field(ge=1)  # a larger request is refused (413)
    unknown_levels: Literal["refuse", "warn"]  # a category the model does not know: 422, or scored and listed
    out_of_range: Literal["refuse", "warn"]  # a number outside the training range widened by range_margin
    range_margin: float = Field(ge=0)  # fraction of the training span added on each side
    log_dir: Path  # prediction log: <log_dir>/<model line>/part-*.parquet
    log_sample_rate: float = Field(ge=0, le=1)  # share of scored rows appended to the log
    hash_ids: bool  # the id column is logged as its sha256, not as sent
    log_queue_rows: int = Field(ge=1)  # rows waiting to be written at most; beyond: dropped and counted
    log_flush_seconds: float = Field(gt=0)
    log_max_files: int = Field(ge=1)  # oldest part files are deleted beyond this many per model line


class MonitorParams(Section):
    """The monitoring flow (`python -m flows.monitor`): drift of the logged traffic, live performance, retraining."""

    window_hours: float = Field(gt=0)  # prediction-log rows this recent are assessed
    min_rows: int = Field(ge=1)  # fewer logged rows than this: nothing assessed, nothing triggered
    drift_threshold: float = Field(gt=0)  # PSI of a feature above this is drift
    drifted_columns: int = Field(ge=1)  # retrain when at least this many features drift
    prediction_drift_threshold: float = Field(gt=0)  # PSI of the predicted score against the version's first rows
    labels_path: Path | None  # a CSV/Parquet of (id column, target) that arrives later; null: none
    max_metric_drop: float = Field(ge=0)  # retrain when the live primary metric is this far below the registered one
    bootstrap_samples: int = Field(ge=100)
    confidence: float = Field(gt=0, lt=1)
    cooldown_hours: float = Field(ge=0)  # no second retraining trigger within this long
    state_file: Path  # the cooldown's memory (JSON)
    report: Path  # offline HTML report
    batch_dir: Path  # where the recent rows are written as the new training batch
    deployment: str  # the training deployment run_deployment triggers: <flow name>/<deployment name>
    cron: str | None  # the monitor's own deployment schedule; null: none
    deployment_name: str
