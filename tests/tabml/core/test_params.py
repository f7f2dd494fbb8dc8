from pathlib import Path

import pytest
import yaml

from tabml.core.params import ParamsError, load_params
from tests.conftest import PROJECT


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def project_params() -> dict:
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def test_project_params_load_with_every_section_typed() -> None:
    params = load_params(PROJECT / "params.yaml")
    assert params.data.task == "binary"
    assert params.validate_.report.suffix == ".json"
    assert params.orchestration.policy("validate").retries == 0


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    raw = project_params()
    raw["train"]["learning_rate"] = 0.1
    with pytest.raises(ParamsError, match=r"train\.learning_rate"):
        load_params(write(tmp_path, raw))


def test_bad_task_type_names_the_key_and_choices(tmp_path: Path) -> None:
    raw = project_params()
    raw["data"]["task"] = "classification"
    with pytest.raises(ParamsError, match=r"data\.task.*binary"):
        load_params(write(tmp_path, raw))


@pytest.mark.parametrize(("yaml_value", "text"), [(True, "True"), (1, "1"), ("yes", "yes")])
def test_positive_class_is_read_as_the_text_in_the_file(tmp_path: Path, yaml_value: object, text: str) -> None:
    raw = project_params()
    raw["data"]["positive_class"] = yaml_value
    assert load_params(write(tmp_path, raw)).data.positive_class == text


def test_missing_file_says_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
