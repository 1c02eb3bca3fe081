"""Training of the three members and the ensemble by walk-forward, and scoring of the latest date.

Walk-forward (see `validation`): the last `n_folds * test_size` labelled dates are cut into test
blocks. For each block, the dates before it (minus the purge/embargo gap) are split again into a
member-training part and a validation part (the last `validation_size` dates, again after a
gap). Members are fitted on the training part (the LSTM early-stops on the validation part),
ensemble weights are fitted on the validation part, and the test block is predicted out of
sample. The reported out-of-sample metrics (`oos_*`) pool every test block.

The registered model is the LAST fold's (trained on every date before its test block), so its
test block, the "evaluation window", is out of sample for it: the promotion decision compares
it with the production model on exactly that window.

Training target: the forward return minus its mean over the symbols on the same date. Only the
cross-sectional ordering matters for the signal, and removing the market move takes out most of
the label's noise. Rows are used only where every member can score them (the LSTM's full window),
so all members and the ensemble are measured on the same rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kobe_pipelines.ml import ensemble
from kobe_pipelines.ml.errors import InsufficientHistoryError
from kobe_pipelines.ml.features import DEFAULT_HORIZON, FeatureSet, check_finite, compute_features
from kobe_pipelines.ml.lstm import FitReport, LSTMConfig, LSTMModel, sequence_ends
from kobe_pipelines.ml.metrics import SignalMetrics, signal_metrics
from kobe_pipelines.ml.tabular import LinearConfig, TreeConfig, linear_model, tree_model
from kobe_pipelines.ml.validation import holdout_split, walk_forward_splits


@dataclass(frozen=True)
class TrainingConfig:
    """`seed` overrides the seeds of the LSTM and the tree. Sizes are in dates."""

    horizon: int = DEFAULT_HORIZON
    n_folds: int = 3
    test_size: int = 63
    validation_size: int = 63
    embargo: int | None = None  # None: the horizon
    min_train_dates: int = 126
    seed: int = 7
    lstm: LSTMConfig = field(default_factory=LSTMConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)

    def seeded(self) -> "TrainingConfig":
        return dataclasses.replace(self, lstm=dataclasses.replace(self.lstm, seed=self.seed),
                                   tree=dataclasses.replace(self.tree, seed=self.seed))

    def params(self) -> dict[str, object]:
        """Flat parameters for the experiment tracker."""
        flat: dict[str, object] = {}
        for key, value in dataclasses.asdict(self.seeded()).items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat


@dataclass(frozen=True, eq=False)
class TrainingResult:
    features: FeatureSet
    config: TrainingConfig
    members: dict[str, object]  # the last fold's fitted members (lstm, tree, linear)
    spec: ensemble.EnsembleSpec  # the last fold's ensemble weights
    oos: pd.DataFrame  # symbol, date, fold, label, lstm, tree, linear, ensemble (out of sample)
    metrics: dict[str, float]
    eval_window: tuple[pd.Timestamp, pd.Timestamp]  # first and last date of the last test block
    lstm_reports: tuple[FitReport, ...]

    def signal(self, member: str | None = None) -> ensemble.FittedSignal:
        """The fitted ensemble (or one `member` alone), with the registered pyfunc's `predict`."""
        return ensemble.FittedSignal(self.spec if member is None else self.spec.only(member), self.members)

    @property
    def version_id(self) -> str:
        return self.features.version_id

    @property
    def content_hash(self) -> str:
        return self.features.content_hash


def train_models(bars: pd.DataFrame, *, version_id: str, content_hash: str,
                 config: TrainingConfig | None = None) -> TrainingResult:
    """Features of the lake version `version_id` (its total-return bars), then `train_on_features`."""
    config = config or TrainingConfig()
    return train_on_features(compute_features(bars, version_id=version_id, content_hash=content_hash, horizon=config.horizon), config)


def train_from_lake(lake, version_id: str, config: TrainingConfig | None = None) -> TrainingResult:
    """Train on the pinned lake version `version_id` (`LakeVersionNotFound` if it does not exist)."""
    from kobe_pipelines.ml.features import features_from_lake

    config = config or TrainingConfig()
    return train_on_features(features_from_lake(lake, version_id, horizon=config.horizon), config)


def train_on_features(features: FeatureSet, config: TrainingConfig | None = None) -> TrainingResult:
    cfg = (config or TrainingConfig()).seeded()
    if features.horizon != cfg.horizon:
        raise ValueError(f"features have label horizon {features.horizon}, the config says {cfg.horizon}")
    frame = features.frame.sort_values(["symbol", "date"], kind="mergesort").reset_index(drop=True)
    check_finite(frame, features.feature_names, where=f"training features of lake version {features.version_id}")
    label = frame[features.label].to_numpy()
    target = label - frame.groupby("date")[features.label].transform("mean").to_numpy()
    usable = np.isfinite(label) & sequence_ends(frame, cfg.lstm.window)
    dates = pd.DatetimeIndex(np.sort(frame.loc[usable, "date"].unique()))
    inner_min = cfg.min_train_dates + cfg.validation_size + cfg.horizon + (cfg.horizon if cfg.embargo is None else cfg.embargo)
    splits = walk_forward_splits(dates, n_folds=cfg.n_folds, test_size=cfg.test_size, horizon=cfg.horizon,
                                 embargo=cfg.embargo, min_train=inner_min)
    in_dates = lambda idx: usable & frame["date"].isin(idx).to_numpy()  # noqa: E731

    oos_parts, reports = [], []
    members: dict[str, object] = {}
    spec = None
    for split in splits:
        inner = holdout_split(split.train, cfg.validation_size, horizon=cfg.horizon, embargo=cfg.embargo,
                              min_train=cfg.min_train_dates)
        train_rows, valid_rows, test_rows = in_dates(inner.train), in_dates(inner.test), in_dates(split.test)
        members = _fit_members(frame, target, train_rows, valid_rows, features.feature_names, cfg, reports)
        preds = ensemble.predict_members(members, frame)
        spec = ensemble.fit_weights(frame.loc[valid_rows], {k: v[valid_rows] for k, v in preds.items()},
                                    label=features.label, feature_names=features.feature_names,
                                    window=cfg.lstm.window, horizon=cfg.horizon)
        part = frame.loc[test_rows, ["symbol", "date"]].assign(fold=split.fold, label=label[test_rows])
        for name, values in preds.items():
            part[name] = values[test_rows]
        part["ensemble"] = ensemble.blend(spec, {k: v[test_rows] for k, v in preds.items()})
        oos_parts.append(part)
    assert spec is not None
    oos = pd.concat(oos_parts, ignore_index=True)
    last = splits[-1].test
    metrics = _metrics(oos, cfg.horizon, last, spec)
    return TrainingResult(features, cfg, members, spec, oos, metrics, (last[0], last[-1]), tuple(reports))


def _fit_members(frame: pd.DataFrame, target: np.ndarray, train_rows: np.ndarray, valid_rows: np.ndarray,
                 feature_names: tuple[str, ...], cfg: TrainingConfig, reports: list[FitReport]) -> dict[str, object]:
    lstm = LSTMModel(cfg.lstm, feature_names)
    reports.append(lstm.fit(frame, target, train_rows, valid_rows))
    x_train = frame.loc[train_rows]
    tree = tree_model(cfg.tree, feature_names).fit(x_train, target[train_rows])
    linear = linear_model(cfg.linear, feature_names).fit(x_train, target[train_rows])
    return {"lstm": lstm, "tree": tree, "linear": linear}


def _metrics(oos: pd.DataFrame, horizon: int, last: pd.DatetimeIndex, spec: ensemble.EnsembleSpec) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in (*ensemble.MEMBERS, "ensemble"):
        out.update(signal_metrics(oos, horizon, score=name).as_dict(prefix=f"oos_{name}_"))
    window = oos.loc[oos["date"].isin(last)]
    for name in ("lstm", "ensemble"):
        out.update(signal_metrics(window, horizon, score=name).as_dict(prefix=f"eval_{name}_"))
    out.update({f"weight_{k}": v for k, v in spec.weights.items()})
    out.update({f"validation_rank_ic_{k}": v for k, v in spec.validation_rank_ic.items()})
    return out


# ---- scoring with a fitted or registered model --------------------------------------------------

def window_frame(features: FeatureSet, start: pd.Timestamp, end: pd.Timestamp, history_rows: int) -> pd.DataFrame:
    """Feature rows needed to score every symbol on the dates [start, end]: those dates plus each
    symbol's `history_rows - 1` rows before `start` (for the LSTM sequences)."""
    frame = features.frame.sort_values(["symbol", "date"], kind="mergesort").reset_index(drop=True)
    frame = frame.loc[frame["date"] <= end]
    before = frame["date"] < start
    rank_back = frame.loc[before].groupby("symbol").cumcount(ascending=False)
    keep = ~before
    keep.loc[rank_back.index] = rank_back < history_rows - 1
    return frame.loc[keep].reset_index(drop=True)


def model_window(model) -> int:
    """The sequence window of a loaded `SignalModel` pyfunc (1 for anything without one)."""
    inner = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else model
    spec = getattr(inner, "spec", None)
    return spec.window if spec is not None and "lstm" in spec.members else 1


def score_latest(model, features: FeatureSet | pd.DataFrame, *, version_id: str | None = None,
                 content_hash: str | None = None, strict: bool = True) -> pd.DataFrame:
    """Scores (symbol, date, score) of every symbol on the latest date of `features` (a FeatureSet,
    or total-return bars of the lake version `version_id`). `model` is a loaded pyfunc.

    A symbol trading on the latest date that cannot be scored (too little history for the
    feature lookback or the sequence window) raises `InsufficientHistoryError` naming it, unless
    `strict=False`, which leaves it out."""
    if not isinstance(features, FeatureSet):
        if version_id is None or content_hash is None:
            raise ValueError("scoring bars needs the version_id and content_hash of their lake version")
        bars = features
        features = compute_features(bars, version_id=version_id, content_hash=content_hash)
        trading = set(bars.loc[pd.to_datetime(bars["date"]) == pd.to_datetime(bars["date"]).max(), "symbol"])
    else:
        trading = None
    latest = features.frame["date"].max()
    frame = window_frame(features, latest, latest, model_window(model))
    scored = model.predict(frame.drop(columns=[features.label]))
    scored = scored.loc[pd.to_datetime(scored["date"]) == latest].reset_index(drop=True)
    good = scored.loc[np.isfinite(scored["score"].to_numpy(dtype="float64"))].reset_index(drop=True)
    missing = sorted((trading or set(scored["symbol"])) - set(good["symbol"]))
    if missing and strict:
        raise InsufficientHistoryError(
            f"cannot score {len(missing)} symbol(s) on {pd.Timestamp(latest).date()}: too little history for the "
            f"feature lookback or the sequence window: {', '.join(missing[:10])}"
        )
    return good.loc[:, ["symbol", "date", "score"]]


def window_metrics(model, features: FeatureSet, start: pd.Timestamp, end: pd.Timestamp) -> tuple[SignalMetrics, pd.DataFrame]:
    """Metrics of `model` (a loaded pyfunc) on the labelled rows of dates [start, end], and the
    scored rows (symbol, date, score, label)."""
    frame = window_frame(features, start, end, model_window(model))
    scored = model.predict(frame.drop(columns=[features.label]))
    scored["label"] = frame[features.label].to_numpy()
    rows = scored.loc[(scored["date"] >= start) & np.isfinite(scored["score"]) & scored["label"].notna()]
    if rows.empty:
        raise InsufficientHistoryError(f"no labelled, scorable rows between {start.date()} and {end.date()}")
    return signal_metrics(rows, features.horizon), rows
