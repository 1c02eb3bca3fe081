"""The comparison that decided a model version's automatic promotion, kept as MLflow version tags.

`promotion.decide` scores the new version (the candidate) and the production version (the
champion) on the SAME evaluation window, the candidate's out-of-sample test block, and writes this
record on the candidate; `kobe models list` reads it back. Scores are mean daily rank IC on that
window, so the two numbers of one record compare; records of different versions usually do not
(their windows differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from kobe_pipelines.ml.errors import RegistryError

TAG_PREFIX = "kobe.promotion."
PROMOTED, REFUSED = "promoted", "refused"


@dataclass(frozen=True)
class PromotionRecord:
    promoted: bool
    window: str  # "YYYY-MM-DD..YYYY-MM-DD", sessions in America/New_York
    candidate_rank_ic: float  # NaN when the candidate could not be scored
    champion_version: str | None  # None: there was no production version
    champion_rank_ic: float | None  # None: no champion, or it could not score the window
    reason: str

    @property
    def decision(self) -> str:
        return PROMOTED if self.promoted else REFUSED

    def tags(self) -> dict[str, str]:
        """The version tags that hold this record (numbers as Python reprs, none as empty text)."""
        values = {
            "decision": self.decision, "reason": self.reason[:4000], "window": self.window,
            "candidate_rank_ic": repr(float(self.candidate_rank_ic)), "champion_version": self.champion_version or "",
            "champion_rank_ic": "" if self.champion_rank_ic is None else repr(float(self.champion_rank_ic)),
        }
        return {TAG_PREFIX + key: value for key, value in values.items()}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], record: str) -> PromotionRecord | None:
        """The record in `tags` (of the version named by `record`, e.g. "kobe-lstm v3"), or None
        when no automatic decision was recorded there."""
        decision = tags.get(TAG_PREFIX + "decision")
        if decision is None:
            return None
        if decision not in (PROMOTED, REFUSED):
            raise RegistryError(f"model version {record}: tag '{TAG_PREFIX}decision' must be "
                                f"'{PROMOTED}' or '{REFUSED}' (got {decision!r})")
        candidate = _score(tags, "candidate_rank_ic", record)
        return cls(decision == PROMOTED, tags.get(TAG_PREFIX + "window", ""),
                   math.nan if candidate is None else candidate, tags.get(TAG_PREFIX + "champion_version") or None,
                   _score(tags, "champion_rank_ic", record), tags.get(TAG_PREFIX + "reason", ""))


def _score(tags: Mapping[str, str], name: str, record: str) -> float | None:
    raw = tags.get(TAG_PREFIX + name, "")
    if raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise RegistryError(f"model version {record}: tag '{TAG_PREFIX}{name}' must be a number "
                            f"(got {raw[:40]!r})") from None
