"""Walk-forward retraining inside a backtest: models that only ever saw what was known then.

Features come from the backtest's lake version (`ml.features`: every feature of (symbol, t) is
computed from rows at or before t, so a feature row never changes when later bars do). Every
`retrain_every` sessions, at session t (the first retrain at the backtest's first session):

1. the label of row s (the forward `horizon`-row return) is KNOWN at t when the row `horizon`
   rows later of that symbol is dated at or before t; other labels are unknown and unused;
2. the labelled dates are split as in training (`ml.validation.holdout_split`): the last
   `validation_size` of them validate (ensemble weights; the LSTM early-stops on them), the
   dates before them minus the purge and embargo gap train the members;
3. the members (tree and linear by default; the LSTM when asked) are fitted on the
   cross-sectionally demeaned label, the ensemble weights on the validation dates (`ml.ensemble`);
4. that model scores every session from t up to the next retrain, each from its own feature rows;
5. the model is logged to MLflow (parameters, validation metrics, the pyfunc) as a run of the
   backtest's experiment, tagged with the lake version, never registered (no production alias moves).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kobe_pipelines.ml import ensemble
from kobe_pipelines.ml.errors import InsufficientHistoryError
from kobe_pipelines.ml.features import FeatureSet
from kobe_pipelines.ml.lstm import LSTMConfig, LSTMModel, sequence_ends
from kobe_pipelines.ml.tabular import LinearConfig, TreeConfig, linear_model, tree_model
from kobe_pipelines.ml.training import window_frame
from kobe_pipelines.ml.validation import holdout_split

log = logging.getLogger(__name__)

MODEL_NAME = "kobe-backtest-ensemble"
TABULAR_MEMBERS = ("tree", "linear")


@dataclass(frozen=True)
class WalkForwardConfig:
    """Sizes in dates (XNYS sessions); `members` a subset of `ensemble.MEMBERS`."""

    retrain_every: int = 63
    members: tuple[str, ...] = TABULAR_MEMBERS
    validation_size: int = 63
    min_train_dates: int = 126
    embargo: int | None = None  # None: the label horizon
    seed: int = 7
    lstm: LSTMConfig = field(default_factory=lambda: LSTMConfig(window=20, hidden_size=16, max_epochs=8, patience=2))
    tree: TreeConfig = field(default_factory=TreeConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)

    def __post_init__(self) -> None:
        if self.retrain_every < 1:
            raise ValueError(f"retrain_every must be at least 1 session (got {self.retrain_every})")
        unknown = [m for m in self.members if m not in ensemble.MEMBERS]
        if unknown or not self.members:
            raise ValueError(f"members must be a non-empty subset of {ensemble.MEMBERS} (got {self.members})")

    def seeded(self) -> "WalkForwardConfig":
        return dataclasses.replace(self, lstm=dataclasses.replace(self.lstm, seed=self.seed),
                                   tree=dataclasses.replace(self.tree, seed=self.seed))

    @property
    def window(self) -> int:
        return self.lstm.window if "lstm" in self.members else 1


@dataclass(frozen=True, eq=False)
class Retrained:
    """One walk-forward model: when it was trained, on what, and how it validated."""

    session: pd.Timestamp  # the retrain session t: it scores t and later sessions
    train_dates: tuple[pd.Timestamp, pd.Timestamp]
    validation_dates: tuple[pd.Timestamp, pd.Timestamp]
    train_rows: int
    spec: ensemble.EnsembleSpec
    members: dict[str, object]
    run_id: str = ""

    @property
    def version(self) -> str:
        """The model's name in lineage: the retrain session."""
        return f"wf-{self.session.date()}"


def label_end_dates(frame: pd.DataFrame, horizon: int) -> np.ndarray:
    """Per row of `frame` (sorted by symbol, date): the date of the row `horizon` rows later of
    the same symbol (the close the label reads), NaT where there is none."""
    return frame.groupby("symbol", sort=False)["date"].shift(-horizon).to_numpy(dtype="datetime64[ns]")


def fit_at(features: FeatureSet, session: pd.Timestamp, config: WalkForwardConfig) -> Retrained:
    """The model a retrain at `session` produces (module docstring, steps 1-3)."""
    cfg = config.seeded()
    frame = features.frame
    label = frame[features.label].to_numpy()
    known = np.isfinite(label) & (label_end_dates(frame, features.horizon) <= np.datetime64(pd.Timestamp(session), "ns"))
    if "lstm" in cfg.members:
        known &= sequence_ends(frame, cfg.lstm.window)
    dates = pd.DatetimeIndex(np.sort(frame.loc[known, "date"].unique()))
    split = holdout_split(dates, cfg.validation_size, horizon=features.horizon, embargo=cfg.embargo,
                          min_train=cfg.min_train_dates)
    train_rows = known & frame["date"].isin(split.train).to_numpy()
    valid_rows = known & frame["date"].isin(split.test).to_numpy()
    rows = train_rows | valid_rows
    target = np.full(len(frame), np.nan)
    chosen = pd.Series(label[rows])
    target[rows] = (chosen - chosen.groupby(frame.loc[rows, "date"].to_numpy()).transform("mean")).to_numpy()
    members = _fit_members(frame, target, train_rows, valid_rows, features.feature_names, cfg)
    # validation predictions from the validation dates' rows plus each symbol's sequence history
    marked = dataclasses.replace(features, frame=frame.assign(_valid=valid_rows))
    scored = window_frame(marked, split.test[0], split.test[-1], cfg.window)
    preds = ensemble.predict_members(members, scored)
    keep = scored["_valid"].to_numpy()
    spec = ensemble.fit_weights(scored.loc[keep], {k: v[keep] for k, v in preds.items()}, label=features.label,
                                feature_names=features.feature_names, window=cfg.window, horizon=features.horizon)
    return Retrained(pd.Timestamp(session), (split.train[0], split.train[-1]), (split.test[0], split.test[-1]),
                     int(train_rows.sum()), spec, members)


def _fit_members(frame: pd.DataFrame, target: np.ndarray, train_rows: np.ndarray, valid_rows: np.ndarray,
                 feature_names: tuple[str, ...], cfg: WalkForwardConfig) -> dict[str, object]:
    members: dict[str, object] = {}
    x_train = frame.loc[train_rows]
    for name in cfg.members:
        if name == "lstm":
            model = LSTMModel(cfg.lstm, feature_names)
            model.fit(frame, target, train_rows, valid_rows)
            members[name] = model
        elif name == "tree":
            members[name] = tree_model(cfg.tree, feature_names).fit(x_train, target[train_rows])
        else:
            members[name] = linear_model(cfg.linear, feature_names).fit(x_train, target[train_rows])
    return members


class WalkForwardSignals:
    """`SignalSource` over models retrained every `config.retrain_every` of `sessions` (the
    backtest's sessions, in order). `on_retrain(model)` is called after each fit (MLflow logging)."""

    model_name = MODEL_NAME

    def __init__(self, features: FeatureSet, sessions: pd.DatetimeIndex, config: WalkForwardConfig,
                 on_retrain=None):
        self.features = features
        self.sessions = pd.DatetimeIndex(sessions)
        self.config = config
        self.models: list[Retrained] = []
        self._on_retrain = on_retrain
        self._scores: dict[pd.Timestamp, pd.DataFrame] = {}
        self._version: dict[pd.Timestamp, str] = {}

    def signals(self, session: pd.Timestamp) -> pd.DataFrame:
        day = pd.Timestamp(session)
        if day not in self._scores:
            self._retrain_for(day)
        return self._scores[day]

    def model_version(self, session: pd.Timestamp) -> str:
        self.signals(session)
        return self._version[pd.Timestamp(session)]

    def _retrain_for(self, day: pd.Timestamp) -> None:
        i = int(self.sessions.get_loc(day))
        start = i - i % self.config.retrain_every
        block = self.sessions[start:start + self.config.retrain_every]
        try:
            model = fit_at(self.features, block[0], self.config)
        except InsufficientHistoryError as exc:
            raise InsufficientHistoryError(f"walk-forward retrain at {block[0].date()}: {exc} (start the history earlier)") from exc
        if self._on_retrain is not None:
            model = self._on_retrain(model) or model
        self.models.append(model)
        frame = window_frame(self.features, block[0], block[-1], model.spec.window)
        scored = ensemble.FittedSignal(model.spec, model.members).predict(frame.drop(columns=[self.features.label]))
        scored = scored.loc[scored["date"].isin(block) & np.isfinite(scored["score"].to_numpy(dtype="float64"))]
        by_date = dict(tuple(scored.groupby("date", sort=True)))
        for session in block:
            self._scores[session] = by_date.get(session, scored.iloc[:0]).reset_index(drop=True)
            self._version[session] = model.version
        log.info("walk-forward model %s: trained on %s..%s (%d rows), scores %s..%s", model.version,
                 model.train_dates[0].date(), model.train_dates[1].date(), model.train_rows, block[0].date(), block[-1].date())
