"""Error messages show the offending value as a person reads it."""

from __future__ import annotations

import decimal

import numpy as np
import pytest

from kobe_pipelines.errors import ConfigError, RecordError, shown_value


@pytest.mark.parametrize(("value", "shown"), [
    (np.float64("nan"), "NaN"),
    (float("nan"), "NaN"),
    (np.float64("inf"), "inf"),
    (np.float32(-1.5), "-1.5"),
    (np.int64(100), "100"),
    (7, "7"),
    (True, "True"),
    ("abc", "'abc'"),
    (decimal.Decimal("1.10"), "Decimal('1.10')"),
    (None, "None"),
])
def test_shown_value_when_numpy_or_plain_value_then_plain_python_spelling(value, shown):
    assert shown_value(value) == shown


def test_record_error_when_value_is_numpy_nan_then_message_says_nan_without_numpy_type():
    error = RecordError("bar", "K0015 2022-12-30", "close", "must be a finite price > 0", np.float64("nan"))
    assert str(error) == "bar K0015 2022-12-30: field 'close' must be a finite price > 0 (got NaN)"


def test_config_error_when_value_is_numpy_int_then_plain_number():
    assert str(ConfigError("KOBE_X", "must be < 10", np.int64(12))) == "setting 'KOBE_X' must be < 10 (got 12)"
