"""Aliases, history and rollback on a real MLflow SQLite store in a temporary folder."""

from __future__ import annotations

import pytest

from kobe_pipelines.ml.errors import RegistryError
from kobe_pipelines.ml.registry import (
    PRODUCTION,
    TAG_LAKE_VERSION,
    ModelRegistry,
    default_tracking_uri,
    production_stack,
)

NAME = "kobe-ensemble"


def _versions(registry: ModelRegistry, n: int, tmp_path) -> None:
    """n versions of NAME, version k learned from lake version lake-k (sources are plain folders)."""
    registry.client.create_registered_model(NAME)
    for k in range(1, n + 1):
        source = tmp_path / f"model-{k}"
        source.mkdir()
        registry.client.create_model_version(NAME, source=source.as_uri(), tags={TAG_LAKE_VERSION: f"lake-{k}"})


def _production(registry: ModelRegistry) -> str:
    return str(registry.version_by_alias(NAME, PRODUCTION).version)


def test_default_tracking_uri_when_env_unset_then_sqlite_under_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KOBE_STATE_DIR", str(tmp_path / "state"))
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'state' / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/db.sqlite")
    assert default_tracking_uri() == "sqlite:////elsewhere/db.sqlite"


def test_experiment_when_created_then_artifacts_live_beside_the_database(registry, tmp_path):
    experiment = registry.client.get_experiment(registry.experiment_id())
    assert experiment.artifact_location == (tmp_path / "mlflow" / "artifacts" / "kobe-models").as_uri()


def test_promote_when_version_exists_then_alias_moves_and_history_records_it(registry, tmp_path):
    _versions(registry, 2, tmp_path)
    registry.promote(NAME, "1")
    registry.promote(NAME, "2", reason="better on 2024 Q1")
    assert _production(registry) == "2"
    history = registry.history(NAME)
    assert [(e["version"], e["action"], e["from"]) for e in history] == [("1", "promote", None), ("2", "promote", "1")]
    assert history[-1]["reason"] == "better on 2024 Q1"
    assert registry.production_lake_version(NAME) == "lake-2"


def test_promote_when_version_does_not_exist_then_registry_error_and_alias_unchanged(registry, tmp_path):
    _versions(registry, 1, tmp_path)
    registry.promote(NAME, "1")
    with pytest.raises(RegistryError, match="has no version '7'"):
        registry.promote(NAME, "7")
    assert _production(registry) == "1"


def test_rollback_when_three_promotions_then_goes_back_one_at_a_time(registry, tmp_path):
    _versions(registry, 3, tmp_path)
    for v in ("1", "2", "3"):
        registry.promote(NAME, v)
    assert registry.rollback(NAME) == "2" and _production(registry) == "2"
    assert registry.rollback(NAME) == "1" and _production(registry) == "1"
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback(NAME)
    assert _production(registry) == "1"
    assert [e["action"] for e in registry.history(NAME)] == ["promote", "promote", "promote", "rollback", "rollback"]


def test_rollback_when_never_promoted_twice_then_registry_error(registry, tmp_path):
    _versions(registry, 1, tmp_path)
    registry.promote(NAME, "1")
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback(NAME)


def test_production_stack_when_promote_after_rollback_then_push_on_the_rolled_back_stack():
    history = [{"version": v, "action": a} for v, a in
               (("1", "promote"), ("2", "promote"), ("1", "rollback"), ("3", "auto-promote"))]
    assert production_stack(history) == ["1", "3"]


def test_load_when_no_production_version_then_registry_error(registry, tmp_path):
    _versions(registry, 1, tmp_path)
    with pytest.raises(RegistryError, match="no version with alias 'production'"):
        registry.load(NAME)


def test_list_when_versions_exist_then_one_row_each_with_alias_and_lake_version(registry, tmp_path):
    _versions(registry, 2, tmp_path)
    registry.promote(NAME, "2")
    rows = registry.list()
    assert [(r.name, r.version, r.aliases, r.lake_version_id) for r in rows] == [
        (NAME, "1", (), "lake-1"), (NAME, "2", ("production",), "lake-2")]
