"""DVC's params check, parsed once per planning pass (tabml.orchestration.dvc_stages.plan_pipeline).

DVC imports stay inside the function: the flow imports this module before it needs DVC.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def params_files_parsed_once() -> Iterator[None]:
    """Within one planning pass, each params file is parsed once, not once per stage that declares params.

    DVC's own check parses params.yaml for every stage and looks each declared key up with dpath, which walks the
    whole file per key: most of a no-op check's time. Here the file is parsed once per (path, size, mtime) and a
    plain dotted key (`train.lr`, `evaluate.slices`) is looked up directly; anything else (a glob, a list index,
    a file DVC does not read from the workspace) goes to DVC's own reader, so the values compared are DVC's.
    """
    import copy

    from dvc.dependency import param

    original = param.read_param_file
    parsed: dict[tuple[str, int, int], Any] = {}

    def read_param_file(
        fs: Any, path: str, key_paths: list[str] | None = None, flatten: bool = False, **kwargs: Any
    ) -> Any:
        config = _parsed(fs, path) if flatten and key_paths and not kwargs else None
        found = _lookup(config, key_paths or []) if isinstance(config, dict) else None
        return copy.deepcopy(found) if found is not None else original(fs, path, key_paths, flatten, **kwargs)

    def _parsed(fs: Any, path: str) -> Any:
        try:
            stat = os.stat(path) if getattr(fs, "protocol", None) == "local" else None
        except OSError:
            stat = None
        if stat is None:
            return None
        key = (path, stat.st_mtime_ns, stat.st_size)
        if key not in parsed:
            parsed[key] = param.load_path(path, fs)
        return parsed[key]

    param.read_param_file = read_param_file
    try:
        yield
    finally:
        param.read_param_file = original


def _lookup(config: dict[str, Any], key_paths: list[str]) -> dict[str, Any] | None:
    """`{key_path: value}` for plain dotted keys, skipping absent ones as DVC does; None for any other key."""
    found: dict[str, Any] = {}
    for key_path in key_paths:
        if any(char in key_path for char in "*?[]"):
            return None
        node: Any = config
        for part in key_path.split("."):
            if not isinstance(node, dict):
                return None  # a list index or a scalar on the way: DVC's reader decides
            if part not in node:
                node = _ABSENT
                break
            node = node[part]
        if node is not _ABSENT:
            found[key_path] = node
    return found


_ABSENT = object()
