"""A freeze killed at any point leaves the previous version current, readable and verifiable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.lake import Lake

SIM = "SimConfig(seed=11, n_symbols=12, start='2020-01-02', end='2021-06-30')"
BEFORE_PUBLICATION = ["start", "raw_written", "derived_written", "manifest_written"]


def run_freeze(lake_dir, end: str, crash_at: str | None) -> int:
    script = textwrap.dedent(
        f"""
        import os
        from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
        from kobe_pipelines.lake import store
        def checkpoint(step):
            if step == {crash_at!r}:
                os._exit(17)  # no cleanup, no finally: like a kill -9 or a power cut
        store._checkpoint = checkpoint
        sim = SimulatedProvider({SIM})
        s, e = '2020-01-02', {end!r}
        store.Lake({str(lake_dir)!r}).freeze(sim.daily_bars(s, e), sim.splits(s, e), sim.dividends(s, e), provider='simulated')
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).returncode


@pytest.mark.slow
@pytest.mark.parametrize("step", BEFORE_PUBLICATION + ["version_renamed"])
def test_freeze_when_killed_at_step_then_previous_version_stays_current_and_verifies(tmp_path, step):
    lake_dir = tmp_path / "lake"
    assert run_freeze(lake_dir, "2021-06-29", crash_at=None) == 0
    lake = Lake(lake_dir)
    previous = lake.current_version_id()
    rows_before = lake.query("SELECT count(*) AS n FROM bars")["n"].iloc[0]

    assert run_freeze(lake_dir, "2021-06-30", crash_at=step) == 17

    lake = Lake(lake_dir)
    assert lake.current_version_id() == previous
    assert lake.query("SELECT count(*) AS n FROM bars")["n"].iloc[0] == rows_before
    listed = [m.version_id for m in lake.versions()]
    if step in BEFORE_PUBLICATION:
        assert listed == [previous]  # no partial version is visible
    for version_id in listed:  # whatever is listed is complete
        assert lake.verify(version_id) == []
    result = CliRunner().invoke(main, ["lake", "verify", "--lake", str(lake_dir)])
    assert result.exit_code == 0, result.output

    # the next freeze succeeds and sweeps what the crash left behind
    assert run_freeze(lake_dir, "2021-06-30", crash_at=None) == 0
    lake = Lake(lake_dir)
    assert lake.query("SELECT max(date)::VARCHAR AS d FROM bars")["d"].iloc[0] == "2021-06-30"
    assert not list(lake.root.rglob("*.tmp")) and not list(lake.versions_dir.glob(".t*"))
    referenced = {e.path for m in lake.versions() for e in m.files}
    assert {p.relative_to(lake.root).as_posix() for p in (lake.root / "raw").rglob("*.parquet")} <= referenced
