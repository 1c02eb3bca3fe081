"""The ensemble of the LSTM, tree and linear members, and its MLflow pyfunc wrapper.

Weights are fitted on the validation dates (never the test dates):

1. each member's validation predictions are standardised with their own validation mean and
   standard deviation (constants stored in the spec, so scoring one row needs no cross-section);
2. raw weight of a member = max(its validation rank IC, 0): a member that ranked no better than
   chance gets nothing;
3. weights are normalised to sum to 1; if every member has rank IC <= 0, equal weights are used
   and `fallback_equal_weights` is recorded (the metrics then show the ensemble has no skill).

score = sum_m w_m * (prediction_m - center_m) / scale_m (a unitless z-like number; higher means
a higher expected forward return relative to other symbols).

The pyfunc (`SignalModel`) takes a plain DataFrame with `symbol`, `date` and the feature
columns and returns one row per input row, in input order: `symbol`, `date`, `score`. Row-wise
members use the row alone; the LSTM member builds each row's sequence from the rows of the SAME
frame (that symbol's `window` latest rows up to the row's date). So to score date t, pass each
symbol's last `window` feature rows up to t (as `training.score_latest` does); rows with a
shorter history in the frame get score NaN, and a NaN or infinite feature raises
`FeatureValueError` naming the symbol, date and feature. The same class serves `kobe-lstm`
(a spec with the LSTM as its only member, weight 1).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from kobe_pipelines.ml.features import check_finite
from kobe_pipelines.ml.lstm import LSTMModel
from kobe_pipelines.ml.metrics import daily_ic
from kobe_pipelines.ml.tabular import TabularModel

MEMBERS = ("lstm", "tree", "linear")
SPEC_FILE = "ensemble.json"


@dataclass(frozen=True)
class EnsembleSpec:
    members: tuple[str, ...]
    weights: dict[str, float]
    centers: dict[str, float]
    scales: dict[str, float]
    validation_rank_ic: dict[str, float]
    fallback_equal_weights: bool
    feature_names: tuple[str, ...]
    window: int
    horizon: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EnsembleSpec":
        raw = json.loads(text)
        raw["members"] = tuple(raw["members"])
        raw["feature_names"] = tuple(raw["feature_names"])
        return cls(**raw)

    def only(self, member: str) -> "EnsembleSpec":
        """The spec of one member alone (weight 1), for registering that member as its own model."""
        return EnsembleSpec((member,), {member: 1.0}, {member: self.centers[member]}, {member: self.scales[member]},
                            {member: self.validation_rank_ic[member]}, False, self.feature_names, self.window, self.horizon)


def fit_weights(validation: pd.DataFrame, predictions: dict[str, np.ndarray], *, label: str,
                feature_names: tuple[str, ...], window: int, horizon: int) -> EnsembleSpec:
    """Weights from validation rows (`validation` has date and `label`; `predictions` aligned to it)."""
    centers, scales, ics = {}, {}, {}
    for name, pred in predictions.items():
        finite = pred[np.isfinite(pred)]
        centers[name] = float(finite.mean())
        scales[name] = float(finite.std()) if finite.std() > 0 else 1.0
        frame = pd.DataFrame({"date": validation["date"].to_numpy(), "score": pred, "label": validation[label].to_numpy()})
        ric = daily_ic(frame, "score", "label", "spearman")
        ics[name] = float(ric.mean()) if len(ric) else 0.0
    raw = {name: max(ic, 0.0) for name, ic in ics.items()}
    total = sum(raw.values())
    fallback = total <= 0
    weights = {name: (1.0 / len(raw) if fallback else value / total) for name, value in raw.items()}
    return EnsembleSpec(tuple(predictions), weights, centers, scales, ics, fallback, tuple(feature_names), window, horizon)


def blend(spec: EnsembleSpec, predictions: dict[str, np.ndarray]) -> np.ndarray:
    """Weighted sum of standardised member predictions (NaN where a weighted member has NaN)."""
    score = None
    for name in spec.members:
        z = (predictions[name] - spec.centers[name]) / spec.scales[name]
        term = spec.weights[name] * z
        score = term if score is None else score + term
    assert score is not None
    return score


def predict_members(members: dict[str, object], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: model.predict(frame) for name, model in members.items()}  # type: ignore[attr-defined]


def write_artifacts(folder: Path, spec: EnsembleSpec, members: dict[str, object]) -> dict[str, str]:
    """Write the spec and the fitted members of `spec` under `folder`; the MLflow artifacts dict."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC_FILE).write_text(spec.to_json())
    artifacts = {"spec": str(folder / SPEC_FILE)}
    for name in spec.members:
        model = members[name]
        if name == "lstm":
            assert isinstance(model, LSTMModel)
            model.save(folder / "lstm")
            artifacts["lstm"] = str(folder / "lstm")
        else:
            assert isinstance(model, TabularModel)
            model.save(folder / f"{name}.pkl")
            artifacts[name] = str(folder / f"{name}.pkl")
    return artifacts


def load_members(spec: EnsembleSpec, artifacts: dict[str, str], device: str = "cpu") -> dict[str, object]:
    members: dict[str, object] = {}
    for name in spec.members:
        members[name] = LSTMModel.load(Path(artifacts[name]), device=device) if name == "lstm" else TabularModel.load(Path(artifacts[name]))
    return members


def score_frame(spec: EnsembleSpec, members: dict[str, object], frame: pd.DataFrame) -> pd.DataFrame:
    """`symbol`, `date`, `score` per row of `frame` (see the module docstring)."""
    missing = [c for c in ("symbol", "date", *spec.feature_names) if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame to score lacks columns {missing}")
    frame = frame.reset_index(drop=True).assign(date=pd.to_datetime(frame["date"].to_numpy()))
    check_finite(frame, spec.feature_names, where="input to the signal model")
    score = blend(spec, predict_members(members, frame))
    return pd.DataFrame({"symbol": frame["symbol"].astype(str).to_numpy(), "date": frame["date"].to_numpy(), "score": score})


class FittedSignal:
    """Fitted members and their spec, scored like the registered pyfunc (`predict(frame)`)."""

    def __init__(self, spec: EnsembleSpec, members: dict[str, object]):
        self.spec = spec
        self.members = {name: members[name] for name in spec.members}

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return score_frame(self.spec, self.members, frame)


class SignalModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc over an `EnsembleSpec` and its members (see the module docstring)."""

    def load_context(self, context) -> None:
        self.spec = EnsembleSpec.from_json(Path(context.artifacts["spec"]).read_text())
        self.members = load_members(self.spec, context.artifacts)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return score_frame(self.spec, self.members, pd.DataFrame(model_input))
