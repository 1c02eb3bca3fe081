"""Shared shape of the live phase checks behind `kobe verify --phase N`."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class VerifyCheck:
    phase: int
    name: str
    passed: bool
    detail: str


def run_check(phase: int, name: str, fn: Callable[[], str]) -> VerifyCheck:
    """Run one check; `fn` returns a short detail on success and raises on failure."""
    try:
        return VerifyCheck(phase, name, True, fn() or "ok")
    except Exception as exc:  # a check that breaks is a failed check, never a crash of verify
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return VerifyCheck(phase, name, False, last)
