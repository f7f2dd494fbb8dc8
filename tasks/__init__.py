"""The pipeline's stages, one module per dvc.yaml stage: `python -m tasks.<stage>` is what dvc.yaml runs.

Importing this package first checks, with the standard library only, that the Python running it has the
project's packages: a stage started by a `python` outside the project's environment stops with one line
saying so (exit 65), instead of a ModuleNotFoundError traceback.
"""

import importlib.util
import sys

_NEEDED = ("numpy", "pandas", "pyarrow", "pydantic", "yaml")
_missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _missing:
    print(
        f"[tasks] FAILED: {sys.executable} cannot import {', '.join(_missing)}: the project's environment is not "
        "the one running this stage\n  what to do: `source .venv/bin/activate` (or run `make repro`); "
        "`.venv/bin/dvc repro` works too once `make setup` has run",
        file=sys.stderr,
    )
    raise SystemExit(65)
