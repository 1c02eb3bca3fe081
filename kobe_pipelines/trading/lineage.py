"""Lineage of signals and orders: which model and lake version made a signal, and proof of it.

The `signals` frame carries its provenance in constant columns (`LINEAGE_COLUMNS`: model and
registry version, lake version id and content hash, signals hash), so it travels with the frame
through any IO manager; `signal_lineage` reads it back. Every intent of a trading run carries it
(`orders.SignalLineage`, with its symbol's score), and so does every decision, ledger row and
submission.

`explain_order` prints an order's chain and recomputes its features and score from the pinned
lake version and the registered model version, showing whether they match the score the order
was made on.

`signals_hash`: sha256 of the scores (symbol, date, score) sorted by symbol, as CSV; the trading
sensor's run key uses it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kobe_pipelines.errors import RecordError
from kobe_pipelines.orders import SignalLineage

LINEAGE_COLUMNS = ("model", "model_version", "lake_version", "lake_hash", "signals_hash")
SCORE_TOLERANCE = 1e-9  # relative: a recomputed score within this of the recorded one matches


def signals_hash(scores: pd.DataFrame) -> str:
    table = scores.loc[:, ["symbol", "date", "score"]].sort_values("symbol")
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()


def stamp_signals(scores: pd.DataFrame, *, model: str, model_version: str, lake_version: str,
                  lake_hash: str) -> pd.DataFrame:
    """`scores` (symbol, date, score) with the lineage columns added."""
    digest = signals_hash(scores)
    return scores.assign(model=model, model_version=str(model_version), lake_version=lake_version,
                         lake_hash=lake_hash, signals_hash=digest)


def signal_lineage(signals: pd.DataFrame) -> SignalLineage | None:
    """The lineage the `signals` frame carries (None when it carries none); `RecordError` when
    its rows disagree (two models or lake versions in one frame)."""
    if not set(LINEAGE_COLUMNS) <= set(signals.columns) or signals.empty:
        return None
    values = {}
    for column in LINEAGE_COLUMNS:
        distinct = signals[column].astype(str).unique()
        if len(distinct) != 1:
            raise RecordError("signals", "lineage", column, f"must be one value for the whole frame (got {list(distinct)[:3]})")
        values[column] = str(distinct[0])
    date = str(pd.Timestamp(pd.to_datetime(signals["date"]).max()).date())
    return SignalLineage(values["model"], values["model_version"], values["lake_version"], values["lake_hash"],
                         values["signals_hash"], date)


@dataclass(frozen=True)
class OrderExplanation:
    chain: list[tuple[str, str]]
    recomputed: list[str] = field(default_factory=list)
    ok: bool = True


def explain_order(ledger, client_order_id: str, *, lake_dir: str | Path | None = None, tracking_uri: str | None = None,
                  state_dir: str | Path | None = None) -> OrderExplanation:
    """The chain of `client_order_id` (`order_views.order_chain`) and, when a model made its
    signal, its features and score recomputed from the pinned lake version and the registered
    model. `ok` is False when the order is unknown or the recomputed score does not match."""
    import json

    from kobe_pipelines.execution.order_views import order_chain

    events = ledger.events(client_order_id)
    chain = order_chain(events, client_order_id)
    if not chain:
        return OrderExplanation([("order", f"{client_order_id}: no intent in the ledger")], ok=False)
    intent = json.loads(events[events["event"] == "intent"].iloc[-1]["detail"] or "{}")
    lineage = SignalLineage.from_dict(intent.get("lineage"))
    if lineage is None or not lineage.model:
        return OrderExplanation(chain, ["recompute: no model made this order's signal; nothing to recompute"])
    return OrderExplanation(chain, *_recompute(lineage, str(intent.get("symbol")), lake_dir, tracking_uri, state_dir))


def _recompute(lineage: SignalLineage, symbol: str, lake_dir, tracking_uri, state_dir) -> tuple[list[str], bool]:
    from kobe_pipelines import paths
    from kobe_pipelines.lake import Lake
    from kobe_pipelines.ml.features import features_from_lake
    from kobe_pipelines.ml.registry import ModelRegistry
    from kobe_pipelines.ml.training import score_latest

    lake = Lake(lake_dir)
    manifest = lake.version(lineage.lake_version)
    lines = [f"recompute: lake version {manifest.version_id}, content hash {manifest.content_hash} "
             f"({'matches' if manifest.content_hash == lineage.lake_hash else 'DIFFERS FROM'} the order's {lineage.lake_hash})"]
    features = features_from_lake(lake, manifest.version_id)
    uri = tracking_uri or f"sqlite:///{paths.state_dir(state_dir) / 'mlflow' / 'mlflow.db'}"
    model = ModelRegistry(uri).load_version(lineage.model, lineage.model_version)
    scores = score_latest(model, features, strict=False)
    day = pd.Timestamp(lineage.signal_date)
    row = features.frame.loc[(features.frame["symbol"] == symbol) & (features.frame["date"] == day)]
    if not row.empty:
        shown = ", ".join(f"{name}={row.iloc[0][name]:.6g}" for name in features.feature_names)
        lines.append(f"features of {symbol} on {day.date()}: {shown}")
    found = scores.loc[(scores["symbol"] == symbol) & (pd.to_datetime(scores["date"]) == day), "score"]
    if found.empty:
        lines.append(f"score: {symbol} is not scored on {day.date()} by {lineage.model} v{lineage.model_version}")
        return lines, False
    score = float(found.iloc[0])
    recorded = lineage.score
    match = recorded is not None and math.isclose(score, recorded, rel_tol=SCORE_TOLERANCE, abs_tol=SCORE_TOLERANCE)
    lines.append(f"score recomputed {score!r}, recorded {recorded!r}: {'MATCH' if match else 'MISMATCH'}")
    return lines, match and manifest.content_hash == lineage.lake_hash
