"""Charts as PNG bytes (matplotlib's Agg canvas: no display, no global pyplot state).

The curves a person reads before the figures: a training's losses and validation mAP per epoch
from Ultralytics' ``results.csv`` (its loss columns differ by model, so they are found by name),
and precision-recall curves of two models on one split.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

Series = tuple[Sequence[float], Sequence[float]]  # xs, ys

_DPI = 100
MAP_COLUMNS = ("metrics/mAP50-95(B)", "metrics/mAP50(B)")


def _figure(width_px: int, height_px: int):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)


def _png(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def line_chart(
    series: Mapping[str, Series],
    title: str,
    xlabel: str,
    ylabel: str,
    size: tuple[int, int] = (640, 360),
    colors: Mapping[str, str] | None = None,
    unit_square: bool = False,
) -> bytes:
    """One chart of named lines, a legend naming each; ``unit_square`` fixes both axes to
    [0, 1] (a flat curve at 0 stays at the bottom, not in the middle)."""
    if not series:
        raise ValueError(f"{title}: nothing to draw")
    figure = _figure(*size)
    axes = figure.add_subplot()
    for name, (xs, ys) in series.items():
        axes.plot(list(xs), list(ys), label=name, color=(colors or {}).get(name))
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if unit_square:
        axes.set(xlim=(0, 1), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return _png(figure)


def read_results(path: Path) -> dict[str, list[float]]:
    """Ultralytics' ``results.csv`` as columns of floats (its headers may carry spaces)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path}: no epochs recorded")
    return {k.strip(): [float(r[k]) for r in rows] for k in rows[0] if k is not None}


def training_curves(path: Path, size: tuple[int, int] = (900, 360)) -> bytes:
    """Losses (train solid, validation dashed) and validation mAP per epoch, side by side."""
    columns = read_results(path)
    if "epoch" not in columns:
        raise ValueError(f"{path}: no epoch column")
    epochs = columns["epoch"]
    losses = sorted(k for k in columns if k.startswith(("train/", "val/")) and k.endswith("_loss"))
    maps = [k for k in MAP_COLUMNS if k in columns]
    if not losses or not maps:
        raise ValueError(f"{path}: no loss or mAP columns")
    figure = _figure(*size)
    left, right = figure.subplots(1, 2)
    for name in losses:
        style = "--" if name.startswith("val/") else "-"
        left.plot(epochs, columns[name], style, label=name)
    left.set(title="losses", xlabel="epoch")
    for name in maps:
        right.plot(epochs, columns[name], label=name.removeprefix("metrics/").removesuffix("(B)"))
    right.set(title="validation mAP", xlabel="epoch", ylim=(0, 1))
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small")
    figure.tight_layout()
    return _png(figure)


def pr_curves(curves: Mapping[str, Series], colors: Mapping[str, str] | None = None) -> bytes:
    """Precision against recall, one line per model, on the same split."""
    return line_chart(
        curves,
        "precision-recall at IoU 0.5",
        "recall",
        "precision",
        colors=colors,
        unit_square=True,
    )


def bar_chart(
    counts: Mapping[str, Mapping[str, int]],
    title: str,
    ylabel: str,
    size: tuple[int, int] = (760, 360),
) -> bytes:
    """Grouped bars: one group per category (the inner keys, in first-seen order), one bar per
    series (the outer keys) in each, with a legend naming the series."""
    categories = list(dict.fromkeys(c for inner in counts.values() for c in inner))
    if not categories:
        raise ValueError(f"{title}: nothing to draw")
    figure = _figure(*size)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(counts))
    for i, (series, inner) in enumerate(counts.items()):
        xs = [j + (i - (len(counts) - 1) / 2) * width for j in range(len(categories))]
        axes.bar(xs, [inner.get(c, 0) for c in categories], width, label=series)
    axes.set_xticks(range(len(categories)), categories, rotation=30, ha="right", fontsize="small")
    axes.set(title=title, ylabel=ylabel)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize="small")
    figure.tight_layout()
    return _png(figure)


def confusion_chart(matrix: Sequence[Sequence[float]], labels: Sequence[str], title: str) -> bytes:
    """A confusion matrix ([predicted, true], as Ultralytics keeps it) as a heatmap: each true
    class's column normalised to 1, the counts written in the cells."""
    import numpy as np

    counts = np.asarray(matrix, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(labels):
        raise ValueError(f"{title}: a square matrix with one label per row is needed")
    share = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1)
    side = max(360, 60 + 36 * len(labels))
    figure = _figure(side + 80, side)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right", fontsize="small")
    axes.set_yticks(ticks, labels, fontsize="small")
    axes.set(title=title, xlabel="true", ylabel="predicted")
    for (row, col), n in np.ndenumerate(counts):
        if n:
            color = "white" if share[row, col] > 0.5 else "black"
            axes.text(col, row, f"{int(n)}", ha="center", va="center", fontsize=8, color=color)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return _png(figure)
