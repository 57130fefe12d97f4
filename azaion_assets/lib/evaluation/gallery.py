"""The pictures of a scored model, from the same pass that scored it (``onnx_eval.score_frames``).

At the gate: the challenger's and the champion's precision-recall curves on the same test split,
the challenger's confusion matrix at the edge's score threshold, and the frames where the two
differ most. On new data: the frames the champion does worst on. Frames are drawn with the true
boxes and each model's boxes (``lib.pictures.frames`` colours), the rule that picked them stated
beside them (``frame_errors.RULES``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from azaion_assets.lib.evaluation.frame_errors import Frame, differ_most, worst
from azaion_assets.lib.evaluation.onnx_eval import Scored
from azaion_assets.lib.ingest.day_totals import weather_mode
from azaion_assets.lib.labels.classes import slot_list
from azaion_assets.lib.pictures.embed import Picture, Shown
from azaion_assets.lib.text import plural

LEGEND = "Green: the true boxes. Blue, dashed: the challenger's. Red, dashed: the champion's."
MONITOR_LEGEND = "Green: the true boxes. Red, dashed: the champion's."
GALLERY_FILES = "frame_*.jpg"  # the gate's gallery in report/ (globs: an older one is removed)
MONITOR_FILES = "monitor_frame_*.jpg"


def used_classes(matrix: np.ndarray, names: Mapping[int, str]) -> tuple[np.ndarray, list[str]]:
    """The confusion matrix cut to the classes that occur in it, background kept last."""
    background = matrix.shape[0] - 1
    used = [i for i in range(background) if matrix[i, :].any() or matrix[:, i].any()]
    used.append(background)
    labels = [names.get(i, str(i)) for i in used[:-1]] + ["background"]
    return matrix[np.ix_(used, used)], labels


def confusion_picture(scored: Scored, names: Mapping[int, str], title: str) -> Shown:
    from azaion_assets.lib.pictures.charts import confusion_chart

    matrix, labels = used_classes(np.asarray(scored.confusion), names)
    # Ultralytics' ConfusionMatrix matches at IoU 0.45 (its default), the boxes above the edge's
    # threshold only.
    chart = confusion_chart(matrix.tolist(), labels, f"score > {scored.threshold:g}, IoU 0.45")
    return Shown("confusion.png", Picture(title, png=chart))


def pr_picture(curves: Mapping[str, Scored]) -> Shown:
    from azaion_assets.lib.pictures.charts import pr_curves

    series = {
        f"{who} (mAP50 {s.score.map50:.3f})": (s.recall.tolist(), s.precision.tolist())
        for who, s in curves.items()
    }
    colors = dict(zip(series, ("tab:blue", "tab:red"), strict=False))
    png = pr_curves(series, colors=colors)
    return Shown("pr_curves.png", Picture("precision-recall on the test split", png=png))


def gate_pictures(
    challenger: Scored,
    champion: Scored | None,
    names: Mapping[int, str],
    gallery: int,
    width: int,
) -> list[Shown]:
    """Curves, confusion and the frames where challenger and champion differ most (with no
    champion: the challenger's worst frames)."""
    curves = {"challenger": challenger} | ({"champion": champion} if champion else {})
    shown = [
        pr_picture(curves),
        confusion_picture(challenger, names, "challenger: confusion at the edge's threshold"),
    ]
    if champion is None:
        return shown + frame_pictures(worst(challenger.frames, gallery), names, width, _errors)
    for i, (mine, theirs) in enumerate(differ_most(challenger.frames, champion.frames, gallery)):
        title = f"{mine.image.name}: challenger {_errors(mine)}, champion {_errors(theirs)}"
        shown.append(_frame_shown(i, mine, title, names, width, theirs))
    return shown


def frame_pictures(
    frames: Sequence[Frame],
    names: Mapping[int, str],
    width: int,
    caption: Callable[[Frame], str],
    color: tuple[int, int, int] | None = None,
) -> list[Shown]:
    """Each frame with its true boxes and the model's (challenger blue unless ``color``)."""
    return [
        _frame_shown(i, f, f"{f.image.name}: {caption(f)}", names, width, color=color)
        for i, f in enumerate(frames)
    ]


def monitor_pictures(
    scored: Scored,
    names: Mapping[int, str],
    gallery: int,
    width: int,
    positions: Mapping[str, tuple[str, int]],
) -> list[Shown]:
    """The frames the champion does worst on (``frame_errors.worst``), its boxes red, each
    captioned with its errors, source video and weather mode."""
    from azaion_assets.lib.pictures.frames import CHAMPION

    def caption(frame: Frame) -> str:
        media, _ = positions.get(frame.image.stem, ("unknown", 0))
        modes = sorted({weather_mode(int(c)) for c in frame.truth[:, 0]}) or ["no boxes"]
        return f"{_errors(frame)}; video {media}; weather {'/'.join(modes)}"

    chosen = worst(scored.frames, gallery)
    return [
        replace(s, file=f"monitor_{s.file}")
        for s in frame_pictures(chosen, names, width, caption, CHAMPION)
    ]


def _errors(frame: Frame) -> str:
    return f"{plural(frame.errors, 'error')} ({frame.missed} missed, {frame.false} false)"


def _frame_shown(
    index: int,
    frame: Frame,
    title: str,
    names: Mapping[int, str],
    width: int,
    champion: Frame | None = None,
    color: tuple[int, int, int] | None = None,
) -> Shown:
    from azaion_assets.lib.pictures.frames import (
        CHALLENGER,
        CHAMPION,
        TRUTH,
        Layer,
        draw,
        drawn_frame,
        thumbnail,
    )

    layers = [
        Layer(frame.yolo("truth"), TRUTH),
        Layer(frame.yolo("shown"), color or CHALLENGER, dashed=True),
    ]
    if champion is not None:
        layers.append(Layer(champion.yolo("shown"), CHAMPION, dashed=True))
    drawn = drawn_frame(frame.image, layers, width, slot_list(names))
    if drawn is None:  # scored a moment ago; a file gone since is drawn on a blank frame
        blank = np.zeros((frame.height, frame.width, 3), dtype=np.uint8)
        drawn = draw(thumbnail(blank, width), layers, slot_list(names))
    file = f"frame_{index + 1:02d}_{frame.image.stem}.jpg"
    return Shown(file, Picture(title, drawn), frame.image.name)
