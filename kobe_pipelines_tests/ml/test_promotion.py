"""Registration and promotion against a real MLflow SQLite store in a temporary folder."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from kobe_pipelines.lake import LakeVersionNotFound
from kobe_pipelines.ml import promotion
from kobe_pipelines.ml.promotion import register_training, train_and_register
from kobe_pipelines.ml.promotion_record import PromotionRecord
from kobe_pipelines.ml.registry import ENSEMBLE_MODEL, LSTM_MODEL, PRODUCTION, TAG_LAKE_HASH, TAG_LAKE_VERSION
from kobe_pipelines.ml.training import score_latest

from .conftest import SMALL_CONFIG, inverted


class _Crash(RuntimeError):
    pass


def _crash_at(step_name: str):
    def checkpoint(step: str) -> None:
        if step == step_name:
            raise _Crash(step)

    return checkpoint


def _versions(registry, name: str) -> list[str]:
    return [str(v.version) for v in registry.client.search_model_versions(f"name='{name}'")]


def test_register_when_store_is_empty_then_both_models_registered_tagged_and_promoted(registry, small_result):
    outcome = register_training(registry, small_result, dagster_run_id="dagster-run-1", commit="abc123")
    assert outcome.versions == {LSTM_MODEL: "1", ENSEMBLE_MODEL: "1"}
    run = registry.client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_LAKE_VERSION] == small_result.version_id
    assert run.data.tags[TAG_LAKE_HASH] == small_result.content_hash
    assert (run.data.tags["kobe.git_commit"], run.data.tags["kobe.dagster_run_id"]) == ("abc123", "dagster-run-1")
    assert run.data.params["lstm.window"] == str(SMALL_CONFIG.lstm.window)
    for key in ("oos_ensemble_ic", "oos_ensemble_rank_ic", "oos_ensemble_hit_rate", "oos_ensemble_long_short_sharpe"):
        assert run.data.metrics[key] == pytest.approx(small_result.metrics[key])
    for name in (LSTM_MODEL, ENSEMBLE_MODEL):
        production = registry.version_by_alias(name, PRODUCTION)
        assert str(production.version) == "1"
        assert production.tags[TAG_LAKE_VERSION] == small_result.version_id
        assert production.tags["kobe.promotion.decision"] == "promoted"
    assert registry.production_lake_version(ENSEMBLE_MODEL) == small_result.version_id


def test_promotion_when_new_version_beats_production_then_alias_moves_and_both_scores_logged(registry, small_result):
    worse = inverted(small_result)
    register_training(registry, worse, commit="c1")  # v1: ranks backwards, production by default
    outcome = register_training(registry, small_result, commit="c2")  # v2
    d = outcome.decisions[ENSEMBLE_MODEL]
    # an exactly reversed ranking has exactly the opposite rank IC on the same window
    assert d.champion_score == pytest.approx(-d.candidate_score)
    assert d.candidate_score > 0 and d.promoted
    assert str(registry.version_by_alias(ENSEMBLE_MODEL, PRODUCTION).version) == "2"
    tags = registry.get_version(ENSEMBLE_MODEL, "2").tags
    assert tags["kobe.promotion.decision"] == "promoted" and tags["kobe.promotion.champion_version"] == "1"
    assert float(tags["kobe.promotion.champion_rank_ic"]) == pytest.approx(d.champion_score)
    metrics = registry.client.get_run(outcome.run_id).data.metrics
    assert metrics["promotion_kobe_ensemble_candidate_rank_ic"] == pytest.approx(d.candidate_score)
    assert metrics["promotion_kobe_ensemble_champion_rank_ic"] == pytest.approx(d.champion_score)
    assert metrics["promotion_kobe_ensemble_promoted"] == 1.0


def test_promotion_when_new_version_is_worse_then_alias_stays_and_refusal_is_logged(registry, small_result):
    register_training(registry, small_result, commit="c1")  # v1
    outcome = register_training(registry, inverted(small_result), commit="c2")  # v2, ranks backwards
    d = outcome.decisions[ENSEMBLE_MODEL]
    assert not d.promoted and d.candidate_score < d.champion_score
    assert str(registry.version_by_alias(ENSEMBLE_MODEL, PRODUCTION).version) == "1"
    assert registry.get_version(ENSEMBLE_MODEL, "2").tags["kobe.promotion.decision"] == "refused"
    assert registry.client.get_run(outcome.run_id).data.metrics["promotion_kobe_ensemble_promoted"] == 0.0
    start, end = small_result.eval_window
    listed = {(v.name, v.version): v.promotion for v in registry.list()}
    assert listed[(ENSEMBLE_MODEL, "2")] == PromotionRecord(
        False, f"{start.date()}..{end.date()}", d.candidate_score, "1", d.champion_score, d.reason)


def test_promotion_when_new_version_only_ties_then_champion_keeps_production(registry, small_result):
    register_training(registry, small_result, commit="c1")
    outcome = register_training(registry, small_result, commit="c2")  # the same model again
    d = outcome.decisions[ENSEMBLE_MODEL]
    assert d.candidate_score == pytest.approx(d.champion_score) and not d.promoted


def test_load_by_alias_when_production_set_then_mlflow_models_uri_predicts_on_a_plain_frame(registry, small_result, monkeypatch):
    register_training(registry, small_result, commit="c1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{ENSEMBLE_MODEL}@{PRODUCTION}")
    frame = small_result.features.frame.drop(columns=[small_result.features.label])
    scored = model.predict(frame)
    expected = small_result.signal().predict(frame)
    np.testing.assert_allclose(scored["score"].to_numpy(), expected["score"].to_numpy(), equal_nan=True)
    latest = score_latest(registry.load(ENSEMBLE_MODEL), small_result.features)
    assert np.isfinite(latest["score"]).all() and latest["symbol"].is_unique


def test_register_when_logging_fails_after_the_run_started_then_run_failed_and_no_version(registry, small_result, monkeypatch):
    monkeypatch.setattr(promotion, "_checkpoint", _crash_at("models_logged"))
    with pytest.raises(_Crash):
        register_training(registry, small_result, commit="c1")
    runs = registry.client.search_runs([registry.experiment_id()])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert _versions(registry, LSTM_MODEL) == [] and _versions(registry, ENSEMBLE_MODEL) == []


def test_register_when_second_registration_fails_then_first_is_removed_and_no_alias_moves(registry, small_result, monkeypatch):
    register_training(registry, small_result, commit="c1")  # v1 of both, in production
    monkeypatch.setattr(promotion, "_checkpoint", _crash_at(f"version_created:{ENSEMBLE_MODEL}"))
    with pytest.raises(_Crash):
        register_training(registry, small_result, commit="c2")
    # kobe-lstm v2 was created, then kobe-ensemble v2: both are gone again
    assert _versions(registry, LSTM_MODEL) == ["1"] and _versions(registry, ENSEMBLE_MODEL) == ["1"]
    for name in (LSTM_MODEL, ENSEMBLE_MODEL):
        assert str(registry.version_by_alias(name, PRODUCTION).version) == "1"


def test_train_and_register_when_lake_version_does_not_exist_then_error_and_nothing_registered(registry, small_lake):
    with pytest.raises(LakeVersionNotFound, match="v-missing"):
        train_and_register(small_lake.lake, "v-missing", registry, SMALL_CONFIG)
    assert registry.client.search_registered_models() == []
    assert registry.client.search_runs([registry.experiment_id()]) == []
