"""MLflow record of a backtest's walk-forward models: one run per retrain, never a registered version.

Each run, in the backtest's experiment (default `kobe-backtest`), holds the retrain's parameters
(the walk-forward configuration, its training and validation windows), the validation rank IC
and ensemble weight of every member, the model as a pyfunc artifact (`model/`, loadable with
`mlflow.pyfunc.load_model(runs:/<run id>/model)`), and tags naming the lake version and content
hash, the backtest id and the retrain session. No model version is created, so no `production`
alias can ever point at a backtest's model.
"""

from __future__ import annotations

import dataclasses
import math
import time

from mlflow.entities import Metric, Param

from kobe_pipelines.backtest.walk_forward import Retrained, WalkForwardConfig
from kobe_pipelines.ml.promotion import log_signal_model
from kobe_pipelines.ml.registry import TAG_LAKE_HASH, TAG_LAKE_VERSION, ModelRegistry
from kobe_pipelines.ml.training import window_frame

EXPERIMENT = "kobe-backtest"
ARTIFACT = "model"


class RetrainLog:
    """Callable handed to `WalkForwardSignals(on_retrain=...)`: logs each model, returns it with its run id."""

    def __init__(self, tracking_uri: str, config: WalkForwardConfig, features, *, backtest_id: str,
                 experiment: str = EXPERIMENT):
        self.registry = ModelRegistry(tracking_uri, experiment=experiment)
        self.config = config
        self.features = features
        self.backtest_id = backtest_id

    def __call__(self, model: Retrained) -> Retrained:
        client = self.registry.client
        fs = self.features
        tags = {TAG_LAKE_VERSION: fs.version_id, TAG_LAKE_HASH: fs.content_hash, "kobe.backtest_id": self.backtest_id,
                "kobe.retrain_session": str(model.session.date()), "kobe.registered": "no (backtest)"}
        run = client.create_run(self.registry.experiment_id(), tags=tags, run_name=f"{self.backtest_id}-{model.version}")
        run_id = run.info.run_id
        status = "FAILED"
        try:
            params = {**_flat(dataclasses.asdict(self.config.seeded())),
                      "train_window": f"{model.train_dates[0].date()}..{model.train_dates[1].date()}",
                      "validation_window": f"{model.validation_dates[0].date()}..{model.validation_dates[1].date()}",
                      "feature_names": ",".join(fs.feature_names)}
            metrics = {"train_rows": float(model.train_rows),
                       **{f"validation_rank_ic_{k}": v for k, v in model.spec.validation_rank_ic.items()},
                       **{f"weight_{k}": v for k, v in model.spec.weights.items()}}
            now = int(time.time() * 1000)
            client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                             metrics=[Metric(k, v, now, 0) for k, v in metrics.items() if math.isfinite(v)])
            sample = window_frame(fs, model.session, model.session, model.spec.window)
            sample = sample.loc[sample["date"] <= model.session, ["symbol", "date", *fs.feature_names]]
            log_signal_model(client, run_id, ARTIFACT, model.spec, model.members, sample)
            status = "FINISHED"
        finally:
            client.set_terminated(run_id, status)
        return dataclasses.replace(model, run_id=run_id)


def _flat(values: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
