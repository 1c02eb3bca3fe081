"""Plots as Markdown metadata that the Dagster UI shows in place.

The UI renders a Markdown value inline when it is shorter than 1,000 characters (`MD_INLINE_LIMIT`)
and hides a longer one behind a "[Show Markdown]" link. So a plot here is a small SVG of lines,
bars and filled areas (no text) in a data URI, with its title, legend and axis ranges written as
Markdown around it, the whole kept under the limit by thinning the points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import dagster as dg

MD_INLINE_LIMIT = 1000
WIDTH, HEIGHT = 300, 100  # px: fits the value column of the UI's metadata table
# matplotlib's default colour cycle, named for the legend
COLOR_NAMES = {"#1f77b4": "blue", "#ff7f0e": "orange", "#2ca02c": "green", "#d62728": "red", "#9467bd": "purple",
               "#8c564b": "brown", "#e377c2": "pink", "#7f7f7f": "grey", "#bcbd22": "olive", "#17becf": "cyan"}
CYCLE = tuple(COLOR_NAMES)


@dataclass(frozen=True)
class Series:
    """One thing drawn: a `line`, `bars` (x = bar centres, y = heights from 0) or an `area`
    (a closed outline). `axis` 0 is the left scale, 1 the right (a twin axis)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    kind: str = "line"
    color: str = CYCLE[0]
    axis: int = 0


def chart_markdown(title: str, series: Sequence[Series], note: str = "") -> dg.MetadataValue:
    """`series` as an inline SVG under `title`, with a legend and each scale's range."""
    drawn = [s for s in series if len(s.x) and len(s.y)]
    if not drawn:
        return dg.MetadataValue.md(f"**{title}**: _nothing to plot_")
    points = 120
    while True:
        text = _markdown(title, drawn, note, points)
        if len(text) < MD_INLINE_LIMIT or points <= 6:
            return dg.MetadataValue.md(text)
        points = int(points * 0.8)


def plot_markdown(draw: Callable, title: str) -> dg.MetadataValue:
    """Let `draw(ax)` draw on a matplotlib Axes, then show what it drew (its lines, bars and
    filled areas, on the left scale and a twin axis's right one) with `chart_markdown`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots()
    try:
        draw(ax)
        series: list[Series] = []
        notes = [label for label in (ax.get_xlabel(), ax.get_ylabel()) if label]
        for axis, axes in enumerate(fig.axes[:2]):
            for line in axes.get_lines():
                xy = line.get_xydata()
                series.append(Series(_label(line.get_label()), xy[:, 0], xy[:, 1], "line", to_hex(line.get_color()), axis))
            bars = [p for p in axes.patches if isinstance(p, Rectangle)]
            if bars:
                series.append(Series(_label(bars[0].get_label()), [b.get_x() + b.get_width() / 2 for b in bars],
                                     [b.get_height() for b in bars], "bars", to_hex(bars[0].get_facecolor()), axis))
            for collection in axes.collections:
                for path in collection.get_paths()[:1]:
                    xy = path.vertices
                    series.append(Series(_label(collection.get_label()), xy[:, 0], xy[:, 1], "area",
                                         to_hex(collection.get_facecolor()[0]), axis))
            if axis == 1 and axes.get_ylabel():
                notes.append(f"right: {axes.get_ylabel()}")
    finally:
        plt.close(fig)
    return chart_markdown(title, series, "; ".join(notes))


def _label(label: str) -> str:
    return "" if label.startswith("_") else label


def _markdown(title: str, series: Sequence[Series], note: str, points: int) -> str:
    xs = [float(v) for s in series for v in s.x]
    x0, x1 = min(xs), max(xs)
    ranges = {}
    for axis in {s.axis for s in series}:
        ys = [float(v) for s in series if s.axis == axis for v in s.y] + [0.0] * any(s.kind == "bars" for s in series if s.axis == axis)
        ranges[axis] = (min(ys), max(ys))
    paths = [_path(s, x0, x1, *ranges[s.axis], points) for s in series]
    svg = f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}'>{''.join(paths)}</svg>"
    uri = "data:image/svg+xml," + svg.replace("%", "%25").replace("#", "%23").replace("<", "%3C").replace(">", "%3E")
    legend = " · ".join(f"{COLOR_NAMES.get(s.color, s.color)}: {s.label}" for s in series if s.label)
    scales = "; ".join(f"{'left' if axis == 0 else 'right'} {lo:,.4g} to {hi:,.4g}" for axis, (lo, hi) in sorted(ranges.items()))
    lines = [f"**{title}**", f"![{title}](<{uri}>)", " ".join(p for p in (legend, f"({scales})", note) if p)]
    return "\n\n".join(lines)


def _path(s: Series, x0: float, x1: float, y0: float, y1: float, points: int) -> str:
    def px(v: float) -> int:
        return round((float(v) - x0) / (x1 - x0) * (WIDTH - 4)) + 2 if x1 > x0 else WIDTH // 2

    def py(v: float) -> int:
        return HEIGHT - 2 - round((float(v) - y0) / (y1 - y0) * (HEIGHT - 4)) if y1 > y0 else HEIGHT // 2

    step = max(1, -(-len(s.x) // points))
    idx = list(range(0, len(s.x), step))
    if idx[-1] != len(s.x) - 1:
        idx.append(len(s.x) - 1)
    coords = [(px(s.x[i]), py(s.y[i])) for i in idx]
    if s.kind == "bars":
        base = py(0.0)
        half = max(1, (WIDTH - 4) // (2 * max(len(coords), 1)))
        d = "".join(f"M{x - half} {base}V{y}h{2 * half}V{base}" for x, y in coords)
        return f"<path d='{d}' fill='{s.color}'/>"
    d = f"M{coords[0][0]} {coords[0][1]}" + "".join(f"l{b[0] - a[0]} {b[1] - a[1]}" for a, b in zip(coords, coords[1:]))
    if s.kind == "area":
        return f"<path d='{d}z' fill='{s.color}' fill-opacity='0.3'/>"
    return f"<path d='{d}' fill='none' stroke='{s.color}'/>"
