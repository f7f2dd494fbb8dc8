from pathlib import Path

import pytest
import yaml

from tabml.core.params import Params, ParamsError, load_params, workspace_problems
from tests.workspace import EXAMPLE_PARAMS


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def project_params() -> dict:
    return yaml.safe_load((EXAMPLE_PARAMS).read_text())


def test_project_params_load_with_every_section_typed() -> None:
    params = load_params(EXAMPLE_PARAMS)
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


@pytest.mark.parametrize(("yaml_value", "text"), [(1, "1"), ("yes", "yes"), ("True", "True")])
def test_positive_class_is_read_as_the_text_in_the_file(tmp_path: Path, yaml_value: object, text: str) -> None:
    raw = project_params()
    raw["data"]["positive_class"] = yaml_value
    assert load_params(write(tmp_path, raw)).data.positive_class == text


def test_an_unquoted_yes_is_refused_saying_to_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(EXAMPLE_PARAMS.read_text().replace("positive_class: bad ", "positive_class: yes "))
    with pytest.raises(
        ParamsError, match=r'data\.positive_class: YAML read the label as the boolean True; quote it.*"yes"'
    ):
        load_params(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("drop_columns", ["Status"], r"target 'Status' is listed in data\.drop_columns"),
        ("column_types", {"Status": "categorical"}, r"target 'Status' has a data\.column_types override"),
        ("date_formats", {"When": "dd/mm/yyyy"}, r"data\.date_formats\.When: 'dd/mm/yyyy' is no strptime format"),
    ],
)
def test_roles_that_contradict_the_target_are_errors(tmp_path: Path, key: str, value: object, message: str) -> None:
    raw = project_params()
    raw["data"][key] = value
    with pytest.raises(ParamsError, match=message):
        load_params(write(tmp_path, raw))


def test_missing_file_says_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_keys_of_dict_valued_sections_are_checked(tmp_path: Path) -> None:
    raw = project_params()
    raw["register"]["thresholds"]["binary"] = {"aucroc": 0.6}
    with pytest.raises(ParamsError, match=r"register\.thresholds\.binary: \['aucroc'\] are not binary metrics"):
        load_params(write(tmp_path, raw))
    raw = project_params()
    raw["register"]["primary_metric"] = "rmse"
    with pytest.raises(ParamsError, match=r"register\.primary_metric 'rmse' is not a binary metric"):
        load_params(write(tmp_path, raw))
    raw = project_params()
    raw["register"]["champion"]["slice_tolerances"] = {"Jobb": 0.1}
    with pytest.raises(ParamsError, match=r"slice_tolerances\.Jobb: not a slice column of 'credit'"):
        load_params(write(tmp_path, raw))


def test_a_slices_entry_for_a_model_line_that_exists_nowhere_is_a_typo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    raw = project_params()
    raw["evaluate"]["slices"] = {"credti": ["Home"]}
    params = load_params(write(tmp_path, raw))
    (problem,) = workspace_problems(params)
    assert problem.startswith("evaluate.slices.credti: no model line 'credti' here; did you mean 'credit'?")
    (tmp_path / "references" / "credti").mkdir(parents=True)  # another table's line: legitimate
    assert workspace_problems(params) == []
    raw["evaluate"]["slices"] = {"churn": ["plan"]}  # an entry for a table switched away from: fine
    assert workspace_problems(load_params(write(tmp_path, raw))) == []


def test_no_tunable_has_a_default_in_code() -> None:
    """Every value of the example's pipeline sections comes from params.yaml: drop any key and loading fails."""
    raw = project_params()
    for section in ("preprocess", "train", "evaluate", "register", "orchestration", "serve", "monitor"):
        for key in raw[section]:
            trimmed = project_params()
            del trimmed[section][key]
            with pytest.raises(Exception, match=key):
                Params.model_validate(trimmed)
