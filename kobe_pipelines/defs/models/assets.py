"""Model assets: features of the current lake version -> LSTM, tree, linear and ensemble -> signals.

PyTorch, scikit-learn and MLflow load inside the assets that use them, never when the
definitions load.
"""

import dagster as dg

from kobe_pipelines.defs.env_resources import MlflowResource
from kobe_pipelines.defs.lake.assets import IN_MEMORY
from kobe_pipelines.defs.resources import LakeResource

GROUP = "models"
ENSEMBLE = "kobe-ensemble"
MEMBERS = ("lstm", "tree", "linear")
NO_PRODUCTION_MODEL = (
    "no signals: kobe-ensemble has no production version yet. Lake version {version} is published; "
    "run training_job (Dagster UI: Jobs > training_job, or `kobe demo`) to train and promote one, "
    "then the next refreeze scores."
)


@dg.asset(group_name=GROUP, kinds={"pandas"}, io_manager_key=IN_MEMORY)
def features(lake_version: str, lake: LakeResource) -> dg.Output:
    """Features and labels of one pinned lake version (the one `lake_version` just published)."""
    from kobe_pipelines.ml.features import features_from_lake

    fs = features_from_lake(lake.open(), lake_version)
    frame = fs.frame
    return dg.Output(
        fs,
        metadata={
            "lake_version": fs.version_id,
            "content_hash": fs.content_hash,
            "rows": len(frame),
            "symbols": int(frame["symbol"].nunique()),
            "first_date": str(frame["date"].min().date()),
            "last_date": str(frame["date"].max().date()),
            "features": dg.MetadataValue.json(list(fs.feature_names)),
            "label_horizon_days": fs.horizon,
        },
    )


class TrainingRunConfig(dg.Config):
    """Run-time knobs of a training run (the defaults are the production settings)."""

    max_epochs: int = 15
    n_folds: int = 3
    seed: int = 7


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec("lstm_model", deps=["features"], kinds={"pytorch", "mlflow"}, description="LSTM over per-symbol sequences"),
        dg.AssetSpec("tree_model", deps=["features"], kinds={"scikitlearn"}, description="Gradient-boosted trees"),
        dg.AssetSpec("linear_model", deps=["features"], kinds={"scikitlearn"}, description="Ridge baseline"),
        dg.AssetSpec("ensemble_model", deps=["lstm_model", "tree_model", "linear_model"], kinds={"mlflow"},
                      description="Validation-weighted blend, registered as kobe-ensemble"),
    ],
    check_specs=[
        dg.AssetCheckSpec("check_ensemble_metric_floor", asset="ensemble_model",
                          description="out-of-sample rank IC of the ensemble is above the floor (0.0)"),
    ],
)
def trained_models(context: dg.AssetExecutionContext, config: TrainingRunConfig, features, mlflow: MlflowResource, lake: LakeResource):
    """One walk-forward training of the three members and their ensemble; both kobe-lstm and
    kobe-ensemble are registered in MLflow and promoted only if they beat production on the same
    validation window. A production model's lake version is pinned in the lake."""
    import dataclasses

    import numpy as np

    from kobe_pipelines.ml.promotion import register_training, scores_frame
    from kobe_pipelines.ml.training import TrainingConfig, train_on_features

    base = TrainingConfig()
    training = dataclasses.replace(base, n_folds=config.n_folds, seed=config.seed,
                                   lstm=dataclasses.replace(base.lstm, max_epochs=config.max_epochs))
    result = train_on_features(features, training)
    registry = mlflow.registry()
    outcome = register_training(registry, result, dagster_run_id=context.run_id)
    for name, decision in outcome.decisions.items():
        if decision.promoted:
            lake.open().pin(result.version_id, f"{name} v{decision.version} in production")
    m = result.metrics
    for member in MEMBERS:
        yield dg.MaterializeResult(
            asset_key=f"{member}_model",
            metadata={
                "oos_rank_ic": m.get(f"oos_{member}_rank_ic", float("nan")),
                "oos_ic": m.get(f"oos_{member}_ic", float("nan")),
                "ensemble_weight": m.get(f"weight_{member}", float("nan")),
                "lake_version": result.version_id,
                "registered_version": outcome.versions.get(f"kobe-{member}", ""),
            },
        )
    rank_ic = m.get("oos_ensemble_rank_ic", float("nan"))
    decisions = scores_frame(outcome)
    yield dg.MaterializeResult(
        asset_key="ensemble_model",
        metadata={
            "oos_rank_ic": rank_ic,
            "oos_ic": m.get("oos_ensemble_ic", float("nan")),
            "oos_long_short_sharpe": m.get("oos_ensemble_long_short_sharpe", float("nan")),
            "oos_hit_rate": m.get("oos_ensemble_hit_rate", float("nan")),
            "lake_version": result.version_id,
            "mlflow_run_id": outcome.run_id,
            "registered_versions": dg.MetadataValue.json(outcome.versions),
            "promotion": dg.MetadataValue.md(decisions.to_markdown(index=False) if not decisions.empty else "_none_"),
        },
    )
    yield dg.AssetCheckResult(
        check_name="check_ensemble_metric_floor", asset_key="ensemble_model",
        passed=bool(np.isfinite(rank_ic) and rank_ic > 0.0),
        severity=dg.AssetCheckSeverity.WARN,
        description=f"out-of-sample rank IC {rank_ic:.4f} (floor 0.0)",
    )


@dg.multi_asset(
    group_name=GROUP,
    outs={"signals": dg.AssetOut(is_required=False, kinds={"mlflow", "pandas"},
                                 description="Scores of the latest session from the production ensemble")},
    deps=["ensemble_model"],
    check_specs=[
        dg.AssetCheckSpec("check_signals_no_nan_scores", asset="signals", blocking=True),
        dg.AssetCheckSpec("check_signals_every_symbol_scored", asset="signals", blocking=True),
    ],
    can_subset=True,  # so that, without a production model, it can publish nothing (and its checks do not run)
)
def signals(context: dg.AssetExecutionContext, lake_version: str, lake: LakeResource, mlflow: MlflowResource):
    """Scores for the latest session from `models:/kobe-ensemble@production` (higher = more
    attractive long), from the last sessions the model looks back over (`ml.scoring`), carrying
    their lineage (model and registry version, lake version and content hash, signals hash:
    `trading.lineage`). Its metadata carries the trading date and the signals hash, which the
    trading sensor uses as its run key. Without a production model it publishes nothing and says
    that training must run first."""
    from kobe_pipelines.ml import preload

    preload.wait()  # the libraries the run began to load beside the lake steps
    import numpy as np

    from kobe_pipelines.ml.features import WARMUP_ROWS
    from kobe_pipelines.ml.scoring import scoring_bars
    from kobe_pipelines.ml.training import model_window, score_latest
    from kobe_pipelines.trading.cycle import next_trading_date
    from kobe_pipelines.trading.lineage import signals_hash, stamp_signals

    registry = mlflow.registry()
    production = registry.version_by_alias(ENSEMBLE)
    if production is None:
        context.log.warning(NO_PRODUCTION_MODEL.format(version=lake_version))
        return
    model_version = str(production.version)
    model = registry.load_version(ENSEMBLE, model_version)
    store = lake.open()
    manifest = store.version(lake_version)
    read = scoring_bars(store, lake_version, WARMUP_ROWS + model_window(model) + 1)
    scores = score_latest(model, read.bars, version_id=manifest.version_id, content_hash=manifest.content_hash, strict=False)
    missing = sorted(set(read.expected) - set(scores["symbol"].astype(str)))
    finite = bool(np.isfinite(scores["score"].to_numpy(dtype="float64")).all())
    signal_date = str(read.latest.date())
    digest = signals_hash(scores)
    top = scores.sort_values("score", ascending=False).head(10)
    yield dg.Output(
        stamp_signals(scores, model=ENSEMBLE, model_version=model_version, lake_version=manifest.version_id,
                      lake_hash=manifest.content_hash),
        output_name="signals",
        metadata={
            "signal_date": signal_date,
            "trading_date": next_trading_date(signal_date),
            "signals_hash": digest,
            "lake_version": lake_version,
            "model_version": model_version,
            "scored": len(scores),
            "bars_read": read.rows_read,
            "top_10": dg.MetadataValue.md(top.to_markdown(index=False)),
        },
    )
    yield dg.AssetCheckResult(check_name="check_signals_no_nan_scores", asset_key="signals", passed=finite,
                              description="every score is finite" if finite else "NaN or infinite scores")
    yield dg.AssetCheckResult(
        check_name="check_signals_every_symbol_scored", asset_key="signals", passed=not missing,
        description="every symbol trading on the latest session is scored" if not missing
        else f"not scored: {', '.join(missing[:20])}",
    )


model_assets = [features, trained_models, signals]
