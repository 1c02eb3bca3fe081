"""Exception hierarchy shared by the domain packages.

Every error raised on bad input names the record and the field, so a person can find the row
in the source file or the API answer that caused it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def shown_value(value: Any) -> str:
    """`value` as an error message shows it: numbers as plain numbers (`NaN`, `inf`, `100`, `1.5`,
    never `np.float64(nan)` or `np.int64(100)`), everything else as its repr (text quoted)."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return "NaN" if math.isnan(number) else repr(number)
    return repr(value)


class KobeError(Exception):
    """Base class of every error this package raises on purpose."""


class RecordError(KobeError, ValueError):
    """A record (bar, corporate action, order...) failed validation.

    `record` identifies the row (for example ``"AAPL 2014-06-09"``), `field` the column.
    """

    def __init__(self, kind: str, record: str, field: str, problem: str, value: Any = None):
        self.kind = kind
        self.record = record
        self.field = field
        self.problem = problem
        self.value = value
        shown = "" if value is None else f" (got {shown_value(value)})"
        super().__init__(f"{kind} {record}: field '{field}' {problem}{shown}")


class StateFileError(KobeError):
    """A file under the state folder is missing, unreadable or corrupt."""

    def __init__(self, path: Any, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"state file {path}: {problem}")


class ConfigError(KobeError, ValueError):
    """A configuration value is invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str, value: Any = None):
        self.setting = setting
        self.problem = problem
        shown = "" if value is None else f" (got {shown_value(value)})"
        super().__init__(f"setting '{setting}' {problem}{shown}")
