from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kobe_pipelines.ml.errors import InsufficientHistoryError
from kobe_pipelines.ml.lstm import LSTMConfig, LSTMModel, sequence_ends

FEATURES = ("x", "noise")


def _lagged_frame(n_rows: int = 300, symbols: int = 4, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Per symbol, x is white noise and the target at row t is x at row t-2: only a model that
    reads the sequence (not just row t) can predict it."""
    rng = np.random.default_rng(seed)
    frames, targets = [], []
    for s in range(symbols):
        x = rng.standard_normal(n_rows)
        frames.append(pd.DataFrame({"symbol": f"S{s}", "date": pd.bdate_range("2022-01-03", periods=n_rows),
                                    "x": x, "noise": rng.standard_normal(n_rows)}))
        targets.append(np.concatenate([[np.nan, np.nan], x[:-2]]))
    return pd.concat(frames, ignore_index=True), np.concatenate(targets)


def _masks(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    cut = frame["date"].unique()[220]
    return (frame["date"] < cut).to_numpy(), (frame["date"] >= cut).to_numpy()


CONFIG = LSTMConfig(window=5, hidden_size=8, max_epochs=12, patience=3, learning_rate=1e-2, batch_size=64, device="cpu")


def test_fit_when_target_is_an_earlier_row_then_lstm_learns_it_from_the_sequence():
    frame, target = _lagged_frame()
    train, valid = _masks(frame)
    model = LSTMModel(CONFIG, FEATURES)
    report = model.fit(frame, target, train, valid)
    pred = model.predict(frame)
    ok = valid & np.isfinite(target) & np.isfinite(pred)
    assert np.corrcoef(pred[ok], target[ok])[0, 1] > 0.8
    assert report.best_epoch <= report.epochs <= CONFIG.max_epochs
    assert report.train_samples == int((train & sequence_ends(frame, 5) & np.isfinite(target)).sum())


def test_fit_when_same_seed_twice_then_identical_predictions_and_global_torch_state_restored():
    frame, target = _lagged_frame(n_rows=120)
    train, valid = (frame["date"] < frame["date"].unique()[90]).to_numpy(), (frame["date"] >= frame["date"].unique()[90]).to_numpy()
    config = LSTMConfig(window=5, hidden_size=4, max_epochs=2, device="cpu")
    threads_before = torch.get_num_threads()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = LSTMModel(config, FEATURES)
    first.fit(frame, target, train, valid)
    after = torch.rand(1)
    second = LSTMModel(config, FEATURES)
    second.fit(frame, target, train, valid)
    np.testing.assert_array_equal(first.predict(frame), second.predict(frame))
    assert torch.equal(before, after)  # fit ran in a forked RNG
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads_before


def test_predict_when_symbol_has_fewer_than_window_rows_then_nan_for_those_rows_only():
    frame, target = _lagged_frame(n_rows=120)
    train, valid = (frame["date"] < frame["date"].unique()[90]).to_numpy(), (frame["date"] >= frame["date"].unique()[90]).to_numpy()
    model = LSTMModel(LSTMConfig(window=5, hidden_size=4, max_epochs=1, device="cpu"), FEATURES)
    model.fit(frame, target, train, valid)
    # shuffle the rows: predict must not depend on the input order
    sample = frame.groupby("symbol").head(7).sample(frac=1.0, random_state=1)
    pred = pd.Series(model.predict(sample), index=sample.index).sort_index()
    # each symbol's first 4 rows lack a 5-row window, rows 5-7 have one
    assert pred.isna().tolist() == ([True] * 4 + [False] * 3) * 4


def test_fit_when_history_shorter_than_window_then_insufficient_history_error():
    frame, target = _lagged_frame(n_rows=15)
    train, valid = (frame["date"] < frame["date"].unique()[10]).to_numpy(), (frame["date"] >= frame["date"].unique()[10]).to_numpy()
    model = LSTMModel(LSTMConfig(window=20, device="cpu"), FEATURES)
    with pytest.raises(InsufficientHistoryError, match=r"window of 20 rows.*longest symbol history: 15 rows"):
        model.fit(frame, target, train, valid)


def test_save_then_load_when_round_tripped_then_same_predictions(tmp_path):
    frame, target = _lagged_frame(n_rows=80)
    train, valid = (frame["date"] < frame["date"].unique()[60]).to_numpy(), (frame["date"] >= frame["date"].unique()[60]).to_numpy()
    model = LSTMModel(LSTMConfig(window=5, hidden_size=4, max_epochs=1, device="cpu"), FEATURES)
    model.fit(frame, target, train, valid)
    model.save(tmp_path / "lstm")
    loaded = LSTMModel.load(tmp_path / "lstm")
    np.testing.assert_array_equal(model.predict(frame), loaded.predict(frame))


def test_config_when_device_unknown_then_value_error():
    with pytest.raises(ValueError, match="device"):
        LSTMConfig(device="tpu")
