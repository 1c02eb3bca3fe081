"""`kobe models list|promote|rollback` on a temporary MLflow store and lake."""

from __future__ import annotations

from click.testing import CliRunner

from kobe_pipelines.cli.models_cmds import models
from kobe_pipelines.data.providers.simulated import SimConfig
from kobe_pipelines.ml.registry import PRODUCTION, TAG_LAKE_VERSION

from .conftest import freeze_sim

NAME = "kobe-ensemble"


def _setup(registry, tmp_path) -> tuple[str, str]:
    """A lake with one version, and versions 1 and 2 of NAME: v1 learned from that lake version."""
    sim_lake = freeze_sim(tmp_path / "lake", SimConfig(seed=1, n_symbols=3, start="2023-01-03", end="2023-03-31"))
    registry.client.create_registered_model(NAME)
    for k, lake_version in ((1, sim_lake.version_id), (2, "lake-version-gone")):
        source = tmp_path / f"m{k}"
        source.mkdir()
        registry.client.create_model_version(NAME, source=source.as_uri(), tags={TAG_LAKE_VERSION: lake_version})
    return str(tmp_path / "lake"), sim_lake.version_id


def test_promote_when_version_exists_then_alias_moves_and_its_lake_version_is_pinned(registry, tmp_path):
    lake_path, lake_version = _setup(registry, tmp_path)
    result = CliRunner().invoke(models, ["promote", NAME, "1", "--tracking-uri", registry.tracking_uri, "--lake", lake_path])
    assert result.exit_code == 0, result.output
    assert "production -> v1" in result.output and f"pinned lake version {lake_version}" in result.output
    assert str(registry.version_by_alias(NAME, PRODUCTION).version) == "1"
    from kobe_pipelines.lake import Lake

    assert Lake(lake_path).pins() == {lake_version: f"production model {NAME} v1"}


def test_promote_when_lake_version_is_gone_then_alias_moves_and_a_warning_says_nothing_was_pinned(registry, tmp_path):
    lake_path, _ = _setup(registry, tmp_path)
    result = CliRunner().invoke(models, ["promote", NAME, "2", "--tracking-uri", registry.tracking_uri, "--lake", lake_path])
    assert result.exit_code == 0
    assert "lake version lake-version-gone" in result.output and "nothing pinned" in result.output


def test_promote_when_version_unknown_then_exit_1_with_the_reason(registry, tmp_path):
    lake_path, _ = _setup(registry, tmp_path)
    result = CliRunner().invoke(models, ["promote", NAME, "9", "--tracking-uri", registry.tracking_uri, "--lake", lake_path])
    assert result.exit_code == 1 and "has no version '9'" in result.output


def test_rollback_then_list_when_two_promotions_then_back_to_the_first_and_listed(registry, tmp_path):
    lake_path, _ = _setup(registry, tmp_path)
    runner = CliRunner()
    for v in ("1", "2"):
        runner.invoke(models, ["promote", NAME, v, "--tracking-uri", registry.tracking_uri, "--lake", lake_path])
    result = runner.invoke(models, ["rollback", NAME, "--tracking-uri", registry.tracking_uri, "--lake", lake_path])
    assert result.exit_code == 0 and "rolled back to v1" in result.output
    listing = runner.invoke(models, ["list", "--tracking-uri", registry.tracking_uri])
    v1, v2 = listing.output.splitlines()[2:]  # after the header and the rule
    assert v1.split()[:3] == [NAME, "1", "production"]
    assert v2.split()[:2] == [NAME, "2"] and "production" not in v2


def test_rollback_when_nothing_to_roll_back_then_exit_1(registry, tmp_path):
    _setup(registry, tmp_path)
    result = CliRunner().invoke(models, ["rollback", NAME, "--tracking-uri", registry.tracking_uri])
    assert result.exit_code == 1 and "no earlier production version" in result.output
