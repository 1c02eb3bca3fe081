"""The MLflow model registry of KOBE: training runs, model versions, the `production` alias.

Store: `MLFLOW_TRACKING_URI` if set, else a SQLite database `<state>/mlflow/mlflow.db` with
artifacts under `<state>/mlflow/artifacts` (MLflow 3 refuses the plain file store). Nothing is
written to the working directory.

Production is a registered-model ALIAS (`production`; stages are deprecated since MLflow 2.9).
Every move of the alias is appended to the registered model's tag `kobe.production_history`
(JSON list of {version, action, at, reason}); `rollback` goes back one promotion (the history
is a stack: promote pushes, rollback pops). Each version is tagged with the lake version id and
content hash it learned from, so the lake version of a production model can be pinned.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from kobe_pipelines import paths
from kobe_pipelines.ml.errors import RegistryError
from kobe_pipelines.ml.promotion_record import PromotionRecord

EXPERIMENT = "kobe-models"
PRODUCTION = "production"
LSTM_MODEL = "kobe-lstm"
ENSEMBLE_MODEL = "kobe-ensemble"
MODEL_NAMES = (LSTM_MODEL, ENSEMBLE_MODEL)
HISTORY_TAG = "kobe.production_history"
HISTORY_KEEP = 200
TAG_LAKE_VERSION = "kobe.lake_version_id"
TAG_LAKE_HASH = "kobe.lake_content_hash"


def default_tracking_uri() -> str:
    """`$MLFLOW_TRACKING_URI`, else `sqlite:///<state>/mlflow/mlflow.db` (read at call time)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{paths.state_dir() / 'mlflow' / 'mlflow.db'}"


def _artifact_root(tracking_uri: str) -> Path | None:
    """Artifacts beside a SQLite database (`<db folder>/artifacts`); a server chooses its own."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
    return None


@dataclass(frozen=True)
class VersionSummary:
    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    lake_version_id: str | None
    eval_rank_ic: float | None  # on the version's own evaluation window
    promotion: PromotionRecord | None  # the comparison that decided its automatic promotion
    created: str  # ISO 8601, UTC


class ModelRegistry:
    def __init__(self, tracking_uri: str | None = None, experiment: str = EXPERIMENT):
        self.tracking_uri = tracking_uri or default_tracking_uri()
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self.experiment = experiment

    # ---- plumbing --------------------------------------------------------------------------
    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        root = _artifact_root(self.tracking_uri)
        location = (root / self.experiment).as_uri() if root is not None else None
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def load(self, name: str, alias: str = PRODUCTION):
        """The pyfunc of `name@alias` (raises `RegistryError` if there is none)."""
        version = self.version_by_alias(name, alias)
        if version is None:
            raise RegistryError(f"model '{name}' has no version with alias '{alias}'")
        return self.load_version(name, str(version.version))

    def load_version(self, name: str, version: str):
        """The pyfunc of one version, read through this registry's client (MLflow's global
        tracking URI is neither read nor changed)."""
        self.get_version(name, version)
        return mlflow.pyfunc.load_model(self.client.get_model_version_download_uri(name, str(version)))

    # ---- reading ---------------------------------------------------------------------------
    def get_version(self, name: str, version: str):
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise RegistryError(f"model '{name}' has no version '{version}'") from exc

    def version_by_alias(self, name: str, alias: str = PRODUCTION):
        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None

    def history(self, name: str) -> list[dict]:
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            raise RegistryError(f"no registered model '{name}'") from exc
        return json.loads(model.tags.get(HISTORY_TAG, "[]"))

    def list(self) -> list[VersionSummary]:
        out = []
        for model in self.client.search_registered_models(order_by=["name ASC"]):
            aliases: dict[str, list[str]] = {}
            for alias, version in (model.aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            for mv in self.client.search_model_versions(f"name='{model.name}'"):
                metric = mv.tags.get("kobe.eval_rank_ic")
                out.append(VersionSummary(
                    model.name, str(mv.version), tuple(sorted(aliases.get(str(mv.version), []))), mv.run_id, mv.tags.get(TAG_LAKE_VERSION),
                    float(metric) if metric is not None else None,
                    PromotionRecord.from_tags(mv.tags, f"{model.name} v{mv.version}"),
                    dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.timezone.utc).isoformat(timespec="seconds"),
                ))
        return sorted(out, key=lambda v: (v.name, int(v.version)))

    def production_lake_version(self, name: str) -> str | None:
        """The lake version the production version of `name` learned from (pin it in the lake)."""
        mv = self.version_by_alias(name, PRODUCTION)
        return mv.tags.get(TAG_LAKE_VERSION) if mv is not None else None

    # ---- moving the production alias -------------------------------------------------------
    def promote(self, name: str, version: str, *, action: str = "promote", reason: str = "manual") -> None:
        """Point `production` at `version` (no comparison: that is `promotion.decide`'s job)."""
        self.get_version(name, version)
        self._move(name, str(version), action, reason)

    def rollback(self, name: str, reason: str = "manual rollback") -> str:
        """Point `production` back at the version it had before the last promotion; returns it."""
        stack = production_stack(self.history(name))
        current = self.version_by_alias(name, PRODUCTION)
        if len(stack) < 2 or current is None:
            raise RegistryError(f"model '{name}' has no earlier production version to roll back to")
        target = stack[-2]
        self.get_version(name, target)
        self._move(name, target, "rollback", reason)
        return target

    def _move(self, name: str, version: str, action: str, reason: str) -> None:
        previous = self.version_by_alias(name, PRODUCTION)
        history = self.history(name)
        history.append({"version": version, "action": action, "reason": reason,
                        "from": str(previous.version) if previous is not None else None,
                        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        self.client.set_registered_model_alias(name, PRODUCTION, version)
        try:
            self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-HISTORY_KEEP:]))
            self.client.set_model_version_tag(name, version, "kobe.production_since", history[-1]["at"])
        except Exception:
            # the alias moved but the history could not say so: put the alias back
            if previous is not None:
                self.client.set_registered_model_alias(name, PRODUCTION, str(previous.version))
            else:
                self.client.delete_registered_model_alias(name, PRODUCTION)
            raise


def production_stack(history: list[dict]) -> list[str]:
    """Versions in production order: a promotion pushes, a rollback pops."""
    stack: list[str] = []
    for event in history:
        if event["action"] == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != event["version"]:
                stack.append(event["version"])
        else:
            stack.append(event["version"])
    return stack
