"""Phase 4 live checks: features, models and the MLflow registry on a small simulated lake."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.lake import Lake, LakeVersionNotFound
from kobe_pipelines.verify.base import VerifyCheck, run_check

START, END = "2019-01-02", "2021-06-30"
ORACLE_SHARE = 0.6  # the ensemble's out-of-sample rank IC: at least 60% of the exact oracle's on the same rows
ORACLE_SE_ABOVE = 2.0  # and not above it by more than two standard errors of the difference (a leak)


def run_checks(workdir: Path) -> list[VerifyCheck]:
    from kobe_pipelines.ml import promotion
    from kobe_pipelines.ml.lstm import LSTMConfig
    from kobe_pipelines.ml.metrics import compare_to_oracle, signal_metrics
    from kobe_pipelines.ml.registry import ENSEMBLE_MODEL, PRODUCTION, ModelRegistry
    from kobe_pipelines.ml.training import TrainingConfig, score_latest, train_from_lake

    sim = SimulatedProvider(SimConfig(seed=7, n_symbols=24, start=START, end=END))
    lake = Lake(workdir / "data_lake")
    registry = ModelRegistry(f"sqlite:///{workdir / 'state' / 'mlflow' / 'mlflow.db'}")
    config = TrainingConfig(n_folds=2, test_size=63, validation_size=63, min_train_dates=126,
                            lstm=LSTMConfig(window=20, hidden_size=16, max_epochs=6, patience=2))
    cwd_before = set(os.listdir(Path.cwd()))
    state: dict = {}

    def train() -> str:
        version = lake.freeze(sim.daily_bars(START, END), sim.splits(START, END), sim.dividends(START, END), provider="simulated").version
        result = train_from_lake(lake, version.version_id, config)
        state["result"] = result
        fs = result.features
        return (f"lake version {fs.version_id} (hash {fs.content_hash[:12]}): {len(fs.frame)} rows x "
                f"{len(fs.feature_names)} features, {len(result.oos)} out-of-sample rows")

    def information() -> str:
        result = state["result"]
        ours = signal_metrics(result.oos, config.horizon, score="ensemble")
        oracle = sim.oracle_score(config.horizon, START, END).rename(columns={"score": "oracle"})
        versus = compare_to_oracle(result.oos.merge(oracle, on=["symbol", "date"]), config.horizon, score="ensemble")
        verdict = versus.judge(ORACLE_SHARE, ORACLE_SE_ABOVE)
        if not ours.rank_ic_t > 2 or verdict is not None:
            raise AssertionError(f"ensemble rank IC {ours.rank_ic:.4f} (t {ours.rank_ic_t:.1f}): {verdict or 't below 2'}")
        return (f"out-of-sample rank IC {ours.rank_ic:.4f} (t {ours.rank_ic_t:.1f}) = {versus.share:.0%} of the exact "
                f"{config.horizon}-session oracle's {versus.oracle_rank_ic:.4f} (difference {versus.difference:+.4f} "
                f"+/- {versus.difference_se:.4f})")

    def register() -> str:
        outcome = promotion.register_training(registry, state["result"], dagster_run_id="verify-phase-4")
        if not all(d.promoted for d in outcome.decisions.values()):
            raise AssertionError(f"first versions were not promoted: {outcome.decisions}")
        state["outcome"] = outcome
        return f"run {outcome.run_id[:8]}: " + ", ".join(f"{n} v{v}" for n, v in outcome.versions.items()) + " in production"

    def load_by_alias() -> str:
        import mlflow

        saved = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = registry.tracking_uri
        try:
            model = mlflow.pyfunc.load_model(f"models:/{ENSEMBLE_MODEL}@{PRODUCTION}")
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved
        scores = score_latest(model, state["result"].features)
        if scores.empty or not np.isfinite(scores["score"]).all():
            raise AssertionError("the production model left symbols unscored")
        return f"models:/{ENSEMBLE_MODEL}@{PRODUCTION} scored {len(scores)} symbols on {scores['date'].max().date()}"

    def refuse_worse() -> str:
        result = state["result"]
        worse = dataclasses.replace(result, spec=dataclasses.replace(
            result.spec, scales={k: -v for k, v in result.spec.scales.items()}))
        outcome = promotion.register_training(registry, worse, dagster_run_id="verify-phase-4")
        d = outcome.decisions[ENSEMBLE_MODEL]
        if d.promoted or str(registry.version_by_alias(ENSEMBLE_MODEL).version) != state["outcome"].versions[ENSEMBLE_MODEL]:
            raise AssertionError(f"a backwards-ranking model was promoted: {d}")
        state["worse_version"] = d.version
        return f"v{d.version} refused: {d.reason}"

    def rollback() -> str:
        registry.promote(ENSEMBLE_MODEL, state["worse_version"], reason="verify: manual promotion")
        back = registry.rollback(ENSEMBLE_MODEL, reason="verify: rollback")
        if back != state["outcome"].versions[ENSEMBLE_MODEL]:
            raise AssertionError(f"rolled back to v{back}")
        return f"promoted v{state['worse_version']} by hand, rolled back to v{back}"

    def unknown_version() -> str:
        before = len(registry.list())
        try:
            promotion.train_and_register(lake, "no-such-version", registry, config)
        except LakeVersionNotFound as exc:
            if len(registry.list()) != before:
                raise AssertionError("a failed training registered a version") from exc
            return f"refused: {exc}"
        raise AssertionError("training on an unknown lake version succeeded")

    def working_directory() -> str:
        created = set(os.listdir(Path.cwd())) - cwd_before
        if created:
            raise AssertionError(f"files appeared in the working directory: {sorted(created)}")
        return "nothing written to the working directory"

    return [
        run_check(4, "features from a pinned lake version, walk-forward training", train),
        run_check(4, "out-of-sample IC near the exact oracle, not above it", information),
        run_check(4, "register kobe-lstm and kobe-ensemble, first promotion", register),
        run_check(4, "load models:/kobe-ensemble@production and score the latest date", load_by_alias),
        run_check(4, "a worse model is refused on the same window", refuse_worse),
        run_check(4, "manual promotion and rollback", rollback),
        run_check(4, "unknown lake version: clear error, nothing registered", unknown_version),
        run_check(4, "MLflow store outside the working directory", working_directory),
    ]
