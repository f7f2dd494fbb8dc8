"""The registry index as data, and its pure transitions: stages, promotion, rollback (no I/O here).

`tabml.registry` reads and writes it atomically under the registry lock; the names are re-exported there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from tabml.core.errors import StageError, TransientError

Stage = Literal["staging", "production", "archived"]
ActiveStage = Literal["staging", "production"]
Action = Literal["register", "promote", "rollback"]


class RegistryError(StageError):
    """A registry operation that cannot go ahead; says which file and what to do."""


class RegistryBusy(TransientError, RegistryError):
    """Another writer held the registry lock for longer than we waited: a rerun may succeed."""


class StageEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Stage
    at: str
    action: Action


class VersionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    path: str  # relative to the model line's folder
    created_at: str
    metrics: dict[str, float | None]
    manifest_sha256: str
    stage: Stage | None = None
    stages: list[StageEvent] = []
    reruns: list[str] = []  # when an identical model (same weights and preprocessing) was registered again


class RegistryIndex(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    versions: list[VersionEntry] = []
    log_head: str | None = None  # sha of the last events.jsonl line this cache includes (tabml.registry.events)

    def get(self, version: int) -> VersionEntry | None:
        return next((v for v in self.versions if v.version == version), None)

    def in_stage(self, stage: Stage) -> VersionEntry | None:
        return next((v for v in reversed(self.versions) if v.stage == stage), None)


def production_version(index: RegistryIndex) -> int | None:
    entry = index.in_stage("production")
    return entry.version if entry else None


def next_version(index: RegistryIndex, on_disk: list[int]) -> int:
    """Highest version seen in the index or on disk, plus one (an orphan folder from a crash is skipped)."""
    return max([0, *(v.version for v in index.versions), *on_disk]) + 1


def assign_stage(
    index: RegistryIndex, version: int, at: str, action: Action = "promote", stage: ActiveStage = "production"
) -> RegistryIndex:
    """Put `version` in `stage`; the version that held `stage` becomes archived. Staging never takes production's
    version away: promote another version to production instead."""
    entry = index.get(version)
    if entry is None:
        raise RegistryError(f"{index.name} has no v{version}", todo="see `python -m tabml.registry list`")
    if entry.stage == stage:
        return index
    if entry.stage == "production":
        raise RegistryError(
            f"{index.name} v{version} is production; moving it to {stage} would leave no production version",
            todo="promote (or roll back to) another version to production instead",
        )

    def moved(entry: VersionEntry, new: Stage) -> VersionEntry:
        event = StageEvent(stage=new, at=at, action=action)
        return entry.model_copy(update={"stage": new, "stages": [*entry.stages, event]})

    versions = [
        moved(e, stage) if e.version == version else moved(e, "archived") if e.stage == stage else e
        for e in index.versions
    ]
    return index.model_copy(update={"versions": versions})


def stage_moves(before: RegistryIndex, after: RegistryIndex) -> list[tuple[int, Stage | None, Stage | None]]:
    """(version, old stage, new stage) for every version whose stage differs: what the GTO mirror replays."""
    old = {v.version: v.stage for v in before.versions}
    return [(v.version, old.get(v.version), v.stage) for v in after.versions if old.get(v.version) != v.stage]


def rollback_target(index: RegistryIndex) -> int:
    """The version that held production before the current one, skipping versions already rolled back."""
    current = index.in_stage("production")
    if current is None:
        raise RegistryError(f"{index.name} has no production version", todo="promote one first")
    rolled_back = {v.version for v in index.versions if v.stage == "archived" and v.stages[-1].action == "rollback"}
    events = sorted((e.at, v.version) for v in index.versions for e in v.stages if e.stage == "production")
    for _, version in reversed(events):
        if version != current.version and version not in rolled_back:
            return version
    raise RegistryError(
        f"{index.name} v{current.version} is the only production version so far",
        todo="nothing to roll back to; promote a version explicitly",
    )
