"""PNG plots as Markdown metadata, so materializations show them in the Dagster UI."""

from __future__ import annotations

import base64
import io
from typing import Callable

import dagster as dg


def png_markdown(draw: Callable, title: str, size: tuple[float, float] = (7, 3.2)) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=90)
    draw(ax)
    ax.set_title(title)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})")
