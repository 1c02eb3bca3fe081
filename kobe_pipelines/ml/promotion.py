"""Log a training run, register `kobe-lstm` and `kobe-ensemble`, and decide promotions.

All or nothing:
- if anything fails after the run started and before both versions exist, the run is marked
  FAILED, any version already created by this call is deleted, and no alias moves;
- the `production` alias of a model moves only if its new version beats the current production
  version on the SAME evaluation window (the new version's out-of-sample test block, see
  `training`): both are loaded from the registry and score the same feature rows of the new
  lake version; the score is the mean daily rank IC. Ties and a champion that cannot score the
  window (for example: other feature columns) keep the champion (fail closed); a human can still
  `kobe models promote`. The decision and both scores are logged as version tags
  (`promotion_record.PromotionRecord`, shown by `kobe models list`) and as run metrics.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.models import infer_signature

from kobe_pipelines.ml import ensemble
from kobe_pipelines.ml.promotion_record import PromotionRecord
from kobe_pipelines.ml.registry import ENSEMBLE_MODEL, LSTM_MODEL, PRODUCTION, TAG_LAKE_HASH, TAG_LAKE_VERSION, ModelRegistry
from kobe_pipelines.ml.training import TrainingConfig, TrainingResult, train_from_lake, window_frame, window_metrics


def _checkpoint(step: str) -> None:
    """A named point of `register_training`. Does nothing; failure tests replace it to stop here."""


@dataclass(frozen=True)
class PromotionDecision:
    name: str
    version: str
    promoted: bool
    candidate_score: float
    champion_version: str | None
    champion_score: float | None
    reason: str


@dataclass(frozen=True)
class RegistrationOutcome:
    run_id: str
    versions: dict[str, str]  # model name -> new version
    decisions: dict[str, PromotionDecision]


def git_commit() -> str:
    """The commit of the checkout this package runs from, "+dirty" if it has changes; "unknown" outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def register_training(registry: ModelRegistry, result: TrainingResult, *, dagster_run_id: str | None = None,
                      commit: str | None = None, auto_promote: bool = True) -> RegistrationOutcome:
    """Log `result` as one MLflow run, register both models, then decide each promotion."""
    start, end = result.eval_window
    tags = {
        TAG_LAKE_VERSION: result.version_id, TAG_LAKE_HASH: result.content_hash,
        "kobe.git_commit": commit or git_commit(), "kobe.dagster_run_id": dagster_run_id or "",
        "kobe.eval_window": f"{start.date()}..{end.date()}", "kobe.label_horizon": str(result.features.horizon),
    }
    client = registry.client
    run = client.create_run(registry.experiment_id(), tags=tags, run_name=f"train-{result.version_id}")
    run_id = run.info.run_id
    created: list[tuple[str, str]] = []
    try:
        _checkpoint("run_started")
        now = int(time.time() * 1000)
        params = {**{k: str(v) for k, v in result.config.params().items()},
                  "feature_names": ",".join(result.features.feature_names)}
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                         metrics=[Metric(k, v, now, 0) for k, v in result.metrics.items() if math.isfinite(v)])
        uris = _log_models(client, run_id, result)
        _checkpoint("models_logged")
        for name, (uri, score) in uris.items():
            version_tags = {**tags, "kobe.run_id": run_id, "kobe.eval_rank_ic": repr(score)}
            if not _exists(client, name):
                client.create_registered_model(name)
            mv = client.create_model_version(name, source=uri, run_id=run_id, tags=version_tags)
            created.append((name, str(mv.version)))
            _checkpoint(f"version_created:{name}")
    except BaseException:
        for name, version in created:
            client.delete_model_version(name, version)
        client.set_terminated(run_id, "FAILED")
        raise
    versions = dict(created)
    decisions = {}
    status = "FAILED"  # both versions are complete; a failed decision only leaves the alias where it was
    try:
        if auto_promote:
            for name, version in created:
                decisions[name] = decide(registry, name, version, result, run_id)
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    return RegistrationOutcome(run_id, versions, decisions)


def train_and_register(lake, version_id: str, registry: ModelRegistry, config: TrainingConfig | None = None, *,
                       dagster_run_id: str | None = None) -> tuple[TrainingResult, RegistrationOutcome]:
    """Train on the pinned lake version and register the result; nothing is registered unless
    training succeeded (an unknown version, too little history or bad features raise first)."""
    result = train_from_lake(lake, version_id, config)
    return result, register_training(registry, result, dagster_run_id=dagster_run_id)


def decide(registry: ModelRegistry, name: str, version: str, result: TrainingResult, run_id: str) -> PromotionDecision:
    """Compare `version` with production on the evaluation window of `result`; move the alias if it wins."""
    start, end = result.eval_window
    candidate = registry.load_version(name, version)
    cand_metrics, _ = window_metrics(candidate, result.features, start, end)
    champion = registry.version_by_alias(name, PRODUCTION)
    champ_version = str(champion.version) if champion is not None else None
    champ_score: float | None = None
    if champion is None:
        promoted, reason = True, "no production version yet"
    else:
        try:
            champ_metrics, _ = window_metrics(registry.load_version(name, champ_version), result.features, start, end)
            champ_score = champ_metrics.rank_ic
        except Exception as exc:  # the champion cannot be evaluated here: keep it (fail closed)
            promoted, reason = False, f"champion v{champ_version} could not score the window: {type(exc).__name__}: {exc}"
        else:
            promoted = cand_metrics.rank_ic > champ_score
            verb = "beats" if promoted else "does not beat"
            reason = f"rank IC {cand_metrics.rank_ic:.4f} {verb} champion v{champ_version} {champ_score:.4f}"
    decision = PromotionDecision(name, version, promoted, cand_metrics.rank_ic, champ_version, champ_score, reason)
    _record(registry, decision, run_id, f"{start.date()}..{end.date()}")
    if promoted:
        registry.promote(name, version, action="auto-promote", reason=reason)
    return decision


def _record(registry: ModelRegistry, d: PromotionDecision, run_id: str, window: str) -> None:
    client = registry.client
    record = PromotionRecord(d.promoted, window, d.candidate_score, d.champion_version, d.champion_score, d.reason)
    for key, value in record.tags().items():
        client.set_model_version_tag(d.name, d.version, key, value)
    prefix = f"promotion_{d.name.replace('-', '_')}"
    client.log_metric(run_id, f"{prefix}_candidate_rank_ic", d.candidate_score)
    if d.champion_score is not None and math.isfinite(d.champion_score):
        client.log_metric(run_id, f"{prefix}_champion_rank_ic", d.champion_score)
    client.log_metric(run_id, f"{prefix}_promoted", 1.0 if d.promoted else 0.0)


def _log_models(client, run_id: str, result: TrainingResult) -> dict[str, tuple[str, float]]:
    """Save the LSTM and the ensemble as pyfunc models (in a temporary folder, removed after) and
    upload them as artifacts of the run: model name -> (artifact URI, eval rank IC)."""
    start, end = result.eval_window
    sample = window_frame(result.features, end, end, result.spec.window)
    input_cols = ["symbol", "date", *result.features.feature_names]
    specs = {LSTM_MODEL: (result.spec.only("lstm"), "eval_lstm_rank_ic"),
             ENSEMBLE_MODEL: (result.spec, "eval_ensemble_rank_ic")}
    artifact_uri = client.get_run(run_id).info.artifact_uri
    out = {}
    for name, (spec, metric) in specs.items():
        folder = name.removeprefix("kobe-")
        log_signal_model(client, run_id, folder, spec, result.members, sample.loc[:, input_cols])
        out[name] = (f"{artifact_uri}/{folder}", float(result.metrics.get(metric, float("nan"))))
    return out


def log_signal_model(client, run_id: str, folder: str, spec: ensemble.EnsembleSpec, members: dict[str, object],
                     sample: pd.DataFrame) -> None:
    """Save `spec` and its fitted members as a pyfunc model (in a temporary folder, removed after)
    and upload it as the artifact folder `folder` of the run. `sample`: input rows (symbol, date,
    the features) for the model's signature."""
    with tempfile.TemporaryDirectory(prefix="kobe-model-") as tmp:
        artifacts = ensemble.write_artifacts(Path(tmp) / "members", spec, members)
        scored = ensemble.score_frame(spec, members, sample)
        with warnings.catch_warnings():  # MLflow asks for an input example; the signature says it all
            warnings.filterwarnings("ignore", message=".*input example.*")
            mlflow.pyfunc.save_model(
                path=str(Path(tmp) / folder), python_model=str(Path(ensemble.__file__).with_name("signal_model_code.py")),
                artifacts=artifacts, signature=infer_signature(sample, scored), pip_requirements=_requirements(),
            )
        client.log_artifacts(run_id, str(Path(tmp) / folder), artifact_path=folder)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "torch", "scikit-learn", "pandas", "numpy")] + ["kobe-pipelines"]


def _exists(client, name: str) -> bool:
    return bool(client.search_registered_models(filter_string=f"name='{name}'"))


def scores_frame(outcome: RegistrationOutcome) -> pd.DataFrame:
    """The promotion decisions as a table (for Dagster metadata and the CLI)."""
    return pd.DataFrame([d.__dict__ for d in outcome.decisions.values()])
