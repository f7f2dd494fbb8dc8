"""`dvc exp run -S` overrides written into params.yaml, exactly as DVC does, before a flow run starts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tabml.core.dag import dvc_reason


def override_for(key: str, value: str) -> str:
    """`key='value'` quoted for `dvc exp run -S` (Hydra's grammar), so any path survives: commas, `=`, quotes."""
    # Hydra reads a backslash literally except in a run before a quote (or the closing quote): double those.
    escaped = re.sub(r"(\\*)('|$)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), value)
    return f"{key}='{escaped}'"


def refuse_secrets(overrides: Sequence[str]) -> None:
    """ParamsError for an override that looks like a secret (checked by the entry points before a flow run, and
    its parameters, reach Prefect; and again before params.yaml is written)."""
    from tabml.core.params import ParamsError
    from tabml.core.redact import SECRET_KEY, redact_text

    for override in overrides:
        key = override.split("=", 1)[0]
        if SECRET_KEY.search(key) or redact_text(override) != override:
            raise ParamsError(
                f"params_overrides: '{key}=...' looks like a secret; params.yaml is committed and recorded in "
                "lineage, and flow parameters in Prefect's database, so secrets never go there.\n"
                "  what to do: pass secrets through the environment."
            )


def apply_param_overrides(root: str | Path, overrides: Sequence[str]) -> None:
    """Write `dvc exp run -S` overrides (`train.lr=0.003`) into `<root>/params.yaml`, exactly as DVC does.

    The result must still load as typed params (unknown keys are errors); otherwise the file is left as it
    was. Overrides that look like secrets are refused: params.yaml is committed and recorded in lineage.
    """
    from dvc.exceptions import DvcException
    from dvc.utils.hydra import apply_overrides

    from tabml.core.params import ParamsError, load_params

    path = Path(root).resolve() / "params.yaml"
    refuse_secrets(overrides)
    original = path.read_text()
    try:
        apply_overrides(str(path), list(overrides))
        load_params(path)
    except DvcException as exc:
        path.write_text(original)
        raise ParamsError(
            f"params_overrides: {list(overrides)} are not valid `dvc exp run -S` overrides of {path}: "
            f"{dvc_reason(exc)}\n  what to do: name existing keys, e.g. train.lr=0.003 or data.path='data/x.csv'."
        ) from None
    except ParamsError:
        path.write_text(original)
        raise
