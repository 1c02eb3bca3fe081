"""`kobe models list|promote|rollback` on a temporary MLflow store and lake."""

from __future__ import annotations

from click.testing import CliRunner

from kobe_pipelines.cli.models_cmds import models
from kobe_pipelines.data.providers.simulated import SimConfig
from kobe_pipelines.ml.registry import PRODUCTION, TAG_LAKE_VERSION

from kobe_pipelines_tests.support.readable import assert_readable

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
    title, rows, details = _listing(runner.invoke(models, ["list", "--tracking-uri", registry.tracking_uri]).output)
    assert title.startswith(f"{NAME}: production is v1 (rollback ") and title.endswith(": manual rollback)")
    assert rows == [["1", "production"], ["2"]]
    assert all("no automatic promotion decision recorded" in d for d in details)  # none on either


def _listing(output: str) -> tuple[str, list[list[str]], list[str]]:
    """One model's `kobe models list`: the production line (unwrapped), the rows' cells split on
    blanks, and the text under each row (unwrapped)."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("version "))
    assert lines[header].split() == ["version", "aliases", "window", "rank", "IC", "champion", "champion", "rank",
                                     "IC", "decision"]
    title = " ".join(line.strip() for line in lines[:header])
    rows: list[list[str]] = []
    details: list[str] = []
    for line in lines[header + 2:]:
        if line[:1].isdigit():
            rows.append(line.split())
            details.append("")
        elif line.startswith("  "):
            details[-1] = f"{details[-1]} {line.strip()}".strip()
    return title, rows, details


# A hand-made history of three trainings of NAME. v1 scored 0.0500 on its own window, more than v2's
# 0.0310 on a later window; but on v2's window the champion v1 scored only 0.0200, so v2 won. v3
# scored 0.0150 on its window against v2's 0.0180 there: refused. Production points at v2.
HAND_MADE = (
    ("1", "2024-01-02..2024-03-28", "promoted", "0.05", "", "", "no production version yet"),
    ("2", "2024-04-01..2024-06-28", "promoted", "0.031", "1", "0.02", "rank IC 0.0310 beats champion v1 0.0200"),
    ("3", "2024-07-01..2024-09-27", "refused", "0.015", "2", "0.018", "rank IC 0.0150 does not beat champion v2 0.0180"),
)


def _hand_made(registry, tmp_path) -> None:
    registry.client.create_registered_model(NAME)
    for version, window, decision, candidate, champion, champion_ic, reason in HAND_MADE:
        source = tmp_path / f"hand-{version}"
        source.mkdir()
        tags = {TAG_LAKE_VERSION: f"lake-{version}", "kobe.eval_rank_ic": candidate,
                "kobe.promotion.decision": decision, "kobe.promotion.window": window,
                "kobe.promotion.candidate_rank_ic": candidate, "kobe.promotion.champion_version": champion,
                "kobe.promotion.champion_rank_ic": champion_ic, "kobe.promotion.reason": reason}
        registry.client.create_model_version(NAME, source=source.as_uri(), tags=tags)
        if decision == "promoted":
            registry.promote(NAME, version, action="auto-promote", reason=reason)


def test_list_when_versions_were_decided_then_each_shows_its_comparison_on_the_same_window(registry, tmp_path):
    _hand_made(registry, tmp_path)
    result = CliRunner().invoke(models, ["list", "--tracking-uri", registry.tracking_uri])
    assert result.exit_code == 0, result.output
    title, rows, details = _listing(result.output)
    assert title.startswith(f"{NAME}: production is v2 (auto-promote ")
    assert title.endswith(": rank IC 0.0310 beats champion v1 0.0200)")
    assert rows == [
        ["1", "2024-01-02..2024-03-28", "0.0500", "none", "promoted"],
        ["2", "production", "2024-04-01..2024-06-28", "0.0310", "v1", "0.0200", "promoted"],
        ["3", "2024-07-01..2024-09-27", "0.0150", "v2", "0.0180", "refused"],
    ]
    assert details[0].startswith("learned from lake version lake-1; registered ")
    assert details[0].endswith("UTC; no production version yet")
    assert details[2].endswith("UTC; rank IC 0.0150 does not beat champion v2 0.0180")
    assert max(len(line) for line in result.output.splitlines()) <= 100


def test_list_when_production_was_set_outside_kobe_then_says_so(registry, tmp_path):
    _hand_made(registry, tmp_path)
    registry.client.set_registered_model_alias(NAME, PRODUCTION, "3")  # e.g. in the MLflow UI
    title, _, _ = _listing(CliRunner().invoke(models, ["list", "--tracking-uri", registry.tracking_uri]).output)
    assert title == f"{NAME}: production is v3 (set outside kobe: no production history entry)"


def test_list_when_a_score_tag_is_not_a_number_then_exit_1_naming_version_and_tag(registry, tmp_path):
    _hand_made(registry, tmp_path)
    registry.client.set_model_version_tag(NAME, "2", "kobe.promotion.champion_rank_ic", "high")
    result = CliRunner().invoke(models, ["list", "--tracking-uri", registry.tracking_uri])
    assert result.exit_code == 1
    assert f"model version {NAME} v2: tag 'kobe.promotion.champion_rank_ic' must be a number (got 'high')" in result.output


def test_rollback_when_nothing_to_roll_back_then_exit_1(registry, tmp_path):
    _setup(registry, tmp_path)
    result = CliRunner().invoke(models, ["rollback", NAME, "--tracking-uri", registry.tracking_uri])
    assert result.exit_code == 1 and "no earlier production version" in result.output


def test_list_when_a_score_is_nan_or_missing_then_empty_cells_within_100_columns(registry, tmp_path):
    registry.client.create_registered_model(NAME)
    source = tmp_path / "nan-1"
    source.mkdir()
    registry.client.create_model_version(NAME, source=source.as_uri(), tags={
        "kobe.promotion.decision": "refused", "kobe.promotion.window": "2024-01-02..2024-03-28",
        "kobe.promotion.candidate_rank_ic": "nan", "kobe.promotion.champion_version": "7",
        "kobe.promotion.champion_rank_ic": "", "kobe.promotion.reason": "champion v7 could not score the window"})
    result = CliRunner().invoke(models, ["list", "--tracking-uri", registry.tracking_uri])
    assert_readable(result.output)
    _, rows, details = _listing(result.output)
    assert rows == [["1", "2024-01-02..2024-03-28", "v7", "refused"]]
    assert details[0].startswith("learned from lake version (not recorded); registered ")
