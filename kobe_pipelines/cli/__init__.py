"""The `kobe` command line. Every error ends as one line on stderr and a non-zero exit code
(`kobe_pipelines.cli.errors`); `KOBE_DEBUG=1` shows the traceback instead."""

from __future__ import annotations

import click

from kobe_pipelines.cli.alerts_cmds import alerts
from kobe_pipelines.cli.backtest_cmds import backtest
from kobe_pipelines.cli.errors import KobeGroup
from kobe_pipelines.cli.dagster_cmds import dagster
from kobe_pipelines.cli.lake_cmds import lake
from kobe_pipelines.cli.main_cmds import demo, verify
from kobe_pipelines.cli.models_cmds import models
from kobe_pipelines.cli.order_cmds import order, orders
from kobe_pipelines.cli.risk_cmds import halt, risk


@click.group(cls=KobeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kobe-pipelines")
def main() -> None:
    """KOBE pipelines: data lake, models and trading loop for daily US equities."""
    from kobe_pipelines.alerts import load_dotenv_if_present

    load_dotenv_if_present()  # a .env in the working directory; real environment variables win


main.add_command(lake)
main.add_command(demo)
main.add_command(verify)
main.add_command(halt)
main.add_command(risk)
main.add_command(order)
main.add_command(orders)
main.add_command(models)
main.add_command(alerts)
main.add_command(dagster)
main.add_command(backtest)
