"""Row-wise members of the ensemble: a gradient-boosted tree and a linear (ridge) baseline.

Both see only the feature columns of one (symbol, date) row and predict the training target
(the cross-sectionally demeaned forward return, see `training`). Seeds make them deterministic.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class TreeConfig:
    max_iter: int = 150
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 200
    l2_regularization: float = 1.0
    seed: int = 7
    cpu_threads: int | None = 1  # OpenMP/BLAS threads during fit and predict (see LSTMConfig.cpu_threads)


@dataclass(frozen=True)
class LinearConfig:
    alpha: float = 10.0  # ridge penalty on standardised features
    cpu_threads: int | None = 1


class TabularModel:
    """A fitted scikit-learn estimator over named feature columns."""

    def __init__(self, kind: str, estimator, feature_names: tuple[str, ...], cpu_threads: int | None = 1):
        self.kind = kind
        self.estimator = estimator
        self.feature_names = tuple(feature_names)
        self.cpu_threads = cpu_threads

    def fit(self, frame: pd.DataFrame, target: np.ndarray) -> "TabularModel":
        with threadpool_limits(limits=self.cpu_threads):
            self.estimator.fit(self._x(frame), target)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(limits=self.cpu_threads):
            return np.asarray(self.estimator.predict(self._x(frame)), dtype="float64")

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        return frame.loc[:, list(self.feature_names)].to_numpy(dtype="float64")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps({"kind": self.kind, "estimator": self.estimator, "feature_names": self.feature_names,
                                     "cpu_threads": self.cpu_threads}))

    @classmethod
    def load(cls, path: Path) -> "TabularModel":
        payload = pickle.loads(Path(path).read_bytes())  # our own artifact, written by `save`
        return cls(payload["kind"], payload["estimator"], payload["feature_names"], payload.get("cpu_threads", 1))


def tree_model(config: TreeConfig, feature_names: tuple[str, ...]) -> TabularModel:
    estimator = HistGradientBoostingRegressor(
        max_iter=config.max_iter, learning_rate=config.learning_rate, max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf, l2_regularization=config.l2_regularization,
        early_stopping=False, random_state=config.seed,
    )
    return TabularModel("tree", estimator, feature_names, config.cpu_threads)


def linear_model(config: LinearConfig, feature_names: tuple[str, ...]) -> TabularModel:
    estimator: Pipeline = make_pipeline(StandardScaler(), Ridge(alpha=config.alpha))
    return TabularModel("linear", estimator, feature_names, config.cpu_threads)
