"""Models: features, walk-forward training, LSTM/tree/linear members, ensemble, MLflow registry.

No Dagster import. Modules (import them directly; this package imports nothing heavy itself):

- `features`: `compute_features(bars, version_id=, content_hash=, horizon=5) -> FeatureSet`,
  `features_from_lake(lake, version_id)`; nothing at date t reads data after t.
- `validation`: `walk_forward_splits(dates, n_folds=, test_size=, horizon=, embargo=)` with purge
  and embargo of the label horizon.
- `lstm`, `tabular`: the members (`LSTMModel`, gradient-boosted tree, ridge).
- `ensemble`: validation-IC weights, `SignalModel` (the MLflow pyfunc), `FittedSignal`.
- `metrics`: IC, rank IC, hit rate, long-short Sharpe (conventions in its docstring).
- `training`: `train_models(bars, version_id=, content_hash=, config=) -> TrainingResult`,
  `train_from_lake`, `score_latest(model, features) -> DataFrame(symbol, date, score)`.
- `registry`: `ModelRegistry(tracking_uri=None)`: list, promote, rollback, load by alias.
- `promotion`: `register_training(registry, result, dagster_run_id=)`, `train_and_register`:
  logs the run, registers `kobe-lstm` and `kobe-ensemble`, moves `production` only on a win.
"""
