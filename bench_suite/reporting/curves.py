"""The section "Training curves" (every task): one figure per (task, profile, width,
activation), the methods overlaid; three views: the mean over repetitions with the range as a
band (log scale), each repetition (log scale), the mean on a linear scale. HTML only; the
summary says where they are."""

from __future__ import annotations

from ..core.records import USABLE
from . import fmt
from .figures import aggregate, coincide_note, coinciding, curves_figure, series_labels
from .sections import ALL, Figure, SectionInput, Text, register_section

VIEWS = ("mean and range over repetitions", "each repetition", "linear scale")


def identical_series(records: list) -> list[list[str]]:
    """Series (:func:`.figures.series_labels`) whose mean curves are identical point by point
    (train loss and accuracies): lines drawn on top of each other."""
    label_of, _ = series_labels(records)
    series = {}
    for label in sorted(set(label_of.values())):
        curves = [r.curves or {} for r in records if label_of[r.cell_id] == label]
        values: list[float] = []
        for name in ("train_loss", "train_acc", "test_acc"):
            agg = aggregate(curves, name)
            values += agg["mean"] if agg else []
        series[label] = values
    return coinciding(series)


@register_section("curves", title="Training curves", tasks=ALL, order=90)
def curves_section(data: SectionInput) -> list:
    groups: dict[tuple, list] = {}
    for rec in data.records:
        if rec.status not in USABLE or not rec.curves:
            continue
        cfg = rec.config
        key = (str(cfg.get("task")), fmt.profile_name(rec.profile), cfg.get("width"), str(cfg.get("activation")))
        groups.setdefault(key, []).append(rec)
    if not groups:
        return [Text("_No curves (no done or diverged cells)._")]
    thinned = any(":" in k for recs in groups.values() for r in recs for k in (r.curves or {}))
    out: list = [
        Text(f"{len(groups)} figures, one per task, profile, width and activation, the methods overlaid "
             "(report.html: the mean with the range over repetitions as a band, each repetition, a linear "
             "scale).", summary=True),
        Text("Each series is a method and the settings that tell it apart; n is its repetitions. The band is the "
             "range over repetitions" + ("; the lighter band, the full curve's range between the points drawn "
                                         "(curves longer than 256 points are stored thinned, docs/runner.md)"
                                         if thinned else "") + "."),
    ]
    for key in sorted(groups, key=lambda k: tuple(fmt.sort_key(x) for x in k)):
        task, profile, width, activation = key
        recs = sorted(groups[key], key=lambda r: (r.method, r.name, r.cell_id))
        title = f"{task} · profile {profile} · width {width} · {activation}"
        out.append(Figure(caption=coincide_note(identical_series(recs), "curves").strip(),
            name=fmt.slug("curves", task, profile, f"w{width}", activation), title=title,
            views={VIEWS[0]: lambda recs=recs, title=title: curves_figure(recs, title),
                   VIEWS[1]: lambda recs=recs, title=title: curves_figure(recs, title, per_repetition=True),
                   VIEWS[2]: lambda recs=recs, title=title: curves_figure(recs, title, linear=True)}))
    return out
