"""The prediction log: sampled rows in Parquet part files, ids hashed, bounded queue that drops and counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tabml.predict.prediction_log import NAME, TIME, VERSION, PredictionLog, hash_id, read_window


def frames(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    features = pd.DataFrame({"loan_id": [f"L{i}" for i in range(n)], "Age": range(n), "Home": ["rent"] * n})
    predictions = pd.DataFrame({"loan_id": features["loan_id"], "prediction": ["good"] * n, "proba_bad": [0.1] * n})
    return features, predictions


def new_log(root: Path, **kw: object) -> PredictionLog:
    settings = {"sample_rate": 1.0, "hash_ids": True, "queue_rows": 1000, "flush_seconds": 0.05, "max_files": 100}
    return PredictionLog(root, **{**settings, **kw}, seed=0)  # type: ignore[arg-type]


def test_rows_are_logged_with_version_time_features_and_prediction_ids_hashed(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    log.append("credit", 3, *frames(5), id_column="loan_id")
    log.close()
    rows = read_window(tmp_path, "credit")
    assert len(rows) == 5 and log.written == 5 and log.dropped == 0
    assert rows[NAME].eq("credit").all() and rows[VERSION].eq(3).all() and rows[TIME].notna().all()
    assert rows["loan_id"].tolist() == [hash_id(f"L{i}") for i in range(5)]
    assert rows["Age"].tolist() == list(range(5)) and rows["_prediction"].eq("good").all()
    assert "_proba_bad" in rows and "_loan_id" not in rows


def test_ids_are_kept_as_sent_when_hashing_is_off_and_sampling_keeps_a_share(tmp_path: Path) -> None:
    log = new_log(tmp_path / "a", hash_ids=False)
    log.append("credit", 1, *frames(3), id_column="loan_id")
    log.close()
    assert read_window(tmp_path / "a", "credit")["loan_id"].tolist() == ["L0", "L1", "L2"]
    sampled = new_log(tmp_path / "b", sample_rate=0.3)
    sampled.append("credit", 1, *frames(2000), id_column=None)
    sampled.close()
    assert 400 < len(read_window(tmp_path / "b", "credit")) < 800


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = new_log(tmp_path, queue_rows=10, flush_seconds=60)  # nothing is written until close
    for _ in range(5):
        log.append("credit", 1, *frames(4), id_column=None)
    assert log.dropped == 12  # 4 + 4 fit, the other three appends do not
    log.close()
    assert log.written == 8


def test_a_write_that_fails_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "log"
    blocker.write_text("a file where the log folder should be")
    log = new_log(blocker)
    log.append("credit", 1, *frames(3), id_column=None)
    log.close()
    assert log.dropped == 3 and log.written == 0


def test_old_part_files_are_deleted_beyond_max_files(tmp_path: Path) -> None:
    for version in range(4):
        log = new_log(tmp_path, max_files=2)
        log.append("credit", version, *frames(1), id_column=None)
        log.close()  # one part file each
    assert len(list((tmp_path / "credit").glob("part-*.parquet"))) == 2
    assert read_window(tmp_path, "credit")[VERSION].tolist() == [2, 3]


def test_columns_as_the_server_received_them_are_logged_too(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    features = {"Age": [30, None, "41"], "Home": ["rent", None, "owner"]}
    log.append("credit", 2, features, {"prediction": np.array(["good", "bad", "good"])}, id_column=None)
    log.close()
    rows = read_window(tmp_path, "credit")
    logged = rows[["Age", "Home"]].astype(object).where(rows[["Age", "Home"]].notna(), None)
    assert logged.to_dict("list") == {"Age": ["30", None, "41"], "Home": ["rent", None, "owner"]}


def test_batch_scoring_appends_what_it_scored(tmp_path: Path) -> None:
    import shutil

    from tabml.predict.batch import predict_file
    from tests.serve_process import FIXTURE

    shutil.copytree(FIXTURE / "credit", tmp_path / "registry" / "credit")
    log = new_log(tmp_path / "log")
    done = predict_file(tmp_path / "registry", "credit", FIXTURE / "rows.csv", tmp_path / "out.csv", log=log)
    log.close()
    rows, scored = read_window(tmp_path / "log", "credit"), pd.read_csv(done.output)
    assert len(rows) == done.rows == 60 and rows[VERSION].eq(1).all()
    np.testing.assert_allclose(rows["_proba_bad"], scored["proba_bad"], atol=1e-12)
    assert rows["Income"].isna().sum() == pd.read_csv(FIXTURE / "rows.csv")["Income"].isna().sum()
