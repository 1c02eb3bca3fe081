"""The promotion comparison as MLflow version tags: written and read back unchanged."""

from __future__ import annotations

import math

import pytest

from kobe_pipelines.ml.errors import RegistryError
from kobe_pipelines.ml.promotion_record import PromotionRecord


def test_from_tags_when_written_by_tags_then_the_same_record():
    record = PromotionRecord(True, "2024-04-01..2024-06-28", 0.031, "1", 0.02, "rank IC 0.0310 beats champion v1 0.0200")
    assert record.tags()["kobe.promotion.decision"] == "promoted"
    assert PromotionRecord.from_tags(record.tags(), "kobe-lstm v2") == record


def test_from_tags_when_first_version_without_champion_then_champion_fields_none():
    record = PromotionRecord(True, "2024-01-02..2024-03-28", 0.05, None, None, "no production version yet")
    tags = record.tags()
    assert (tags["kobe.promotion.champion_version"], tags["kobe.promotion.champion_rank_ic"]) == ("", "")
    assert PromotionRecord.from_tags(tags, "kobe-lstm v1") == record


def test_from_tags_when_candidate_could_not_be_scored_then_nan_kept():
    record = PromotionRecord(False, "w", math.nan, "2", 0.01, "refused")
    back = PromotionRecord.from_tags(record.tags(), "kobe-lstm v3")
    assert math.isnan(back.candidate_rank_ic) and back.decision == "refused"


def test_from_tags_when_no_decision_recorded_then_none():
    assert PromotionRecord.from_tags({"kobe.eval_rank_ic": "0.1"}, "kobe-lstm v1") is None


def test_from_tags_when_decision_unknown_then_registry_error_names_version_and_tag():
    with pytest.raises(RegistryError, match=r"kobe-lstm v4: tag 'kobe.promotion.decision' must be 'promoted' or 'refused'"):
        PromotionRecord.from_tags({"kobe.promotion.decision": "maybe"}, "kobe-lstm v4")
