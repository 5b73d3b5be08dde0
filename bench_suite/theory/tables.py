"""Tables of the report's "Theory" section, from results (pandas only, no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .slope import loglog_slope

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _mean_sd(series: "pd.Series") -> str:
    vals = series.dropna().astype(float)
    if vals.empty:
        return "-"
    if len(vals) == 1:
        return f"{vals.iloc[0]:.3g}"
    return f"{vals.mean():.3g} ± {vals.std(ddof=1):.2g}"


def rank_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Rank of J at init against m d / (2n), one row per (init, activation, width).

    ``frame``: one row per cell with columns ``init``, ``activation``, ``width``, ``n``, ``d``,
    ``jacobian_rank``, ``jacobian_rank_predicted``, ``jacobian_sigma_min``, ``jacobian_sigma_max``
    (cells whose Jacobian was skipped have NaN there and are left out). Columns of the result:
    init, activation, m, m·d/(2n), predicted rank, rank (min..max over cells), law holds (k/N
    cells), σ_min (mean ± sd), σ_max (mean ± sd)."""
    import pandas as pd

    cols = ["init", "activation", "m", "m·d/(2n)", "predicted rank", "rank", "law holds", "σ_min", "σ_max"]
    rows = []
    done = frame.dropna(subset=["jacobian_rank"])
    for (init, act, width), g in done.groupby(["init", "activation", "width"], sort=True):
        ranks = g["jacobian_rank"].astype(int)
        pred = g["jacobian_rank_predicted"].astype(int)
        ratio = float((g["width"] * g["d"] / (2 * g["n"])).iloc[0])
        span = f"{ranks.min()}" if ranks.min() == ranks.max() else f"{ranks.min()}..{ranks.max()}"
        rows.append([init, act, int(width), round(ratio, 4), int(pred.iloc[0]), span,
                     f"{int((ranks == pred).sum())}/{len(g)}", _mean_sd(g["jacobian_sigma_min"]),
                     _mean_sd(g["jacobian_sigma_max"])])
    return pd.DataFrame(rows, columns=cols)


def threshold_table(frame: "pd.DataFrame", *, memorized_below: float | None = None) -> "pd.DataFrame":
    """Final training loss against m d / (2n), one row per (activation, width), one column per
    method (mean ± sd over repetitions; "(k div)" counts diverged cells, which are left out of
    the mean). With ``memorized_below``, a column per method counting the repetitions whose
    loss is below it ("memorized k/N").

    ``frame``: columns ``method``, ``activation``, ``width``, ``n``, ``d``, ``train_loss``,
    ``status`` (optional; ``done`` / ``diverged``), and optionally ``floor`` (the linearized loss
    floor of :func:`linearized_loss_floor` for the mirrored method, averaged into its own column)."""
    import pandas as pd

    methods = list(dict.fromkeys(frame["method"]))
    rows = []
    for (act, width), g in frame.groupby(["activation", "width"], sort=True):
        ratio = float((g["width"] * g["d"] / (2 * g["n"])).iloc[0])
        row: dict[str, Any] = {"activation": act, "m": int(width), "m·d/(2n)": round(ratio, 4)}
        for method in methods:
            gm = g[g["method"] == method]
            status = gm["status"] if "status" in gm else pd.Series(["done"] * len(gm), index=gm.index)
            ok = gm[status == "done"]
            text = _mean_sd(ok["train_loss"])
            n_div = int((status == "diverged").sum())
            row[method] = text + (f" ({n_div} div)" if n_div else "")
            if memorized_below is not None:
                hits = int((ok["train_loss"].astype(float) < memorized_below).sum())
                row[f"{method} < {memorized_below:g}"] = f"{hits}/{len(gm)}"
        if "floor" in g:
            row["linearized floor (MLI)"] = _mean_sd(g["floor"])
        rows.append(row)
    return pd.DataFrame(rows)


def eps_table(frame: "pd.DataFrame", *, confidence: float = 0.95) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Final loss and KKT residual against eps, and the fitted log-log slope.

    ``frame``: one row per cell with ``method``, ``activation``, ``width``, ``eps``,
    ``train_loss``, and optionally ``kkt_residual``, ``kkt_active``, ``dist_w0``, ``radius``.
    Returns (per-eps table: method, activation, m, eps, final loss, KKT residual, constraint
    active k/N; slope table: method, activation, m, slope, its interval, n points, next to 2)."""
    import pandas as pd

    rows, slopes = [], []
    for (method, act, width), g in frame.groupby(["method", "activation", "width"], sort=True):
        for eps, ge in g.groupby("eps", sort=True):
            row: dict[str, Any] = {"method": method, "activation": act, "m": int(width), "eps": float(eps),
                                   "final loss": _mean_sd(ge["train_loss"])}
            if "kkt_residual" in ge:
                row["KKT residual"] = _mean_sd(ge["kkt_residual"])
            if "kkt_active" in ge:
                row["active"] = f"{int(ge['kkt_active'].fillna(False).astype(bool).sum())}/{len(ge)}"
            rows.append(row)
        fit = loglog_slope(g["eps"].tolist(), g["train_loss"].tolist(), confidence=confidence)
        interval = ("-" if fit["ci_low"] is None
                    else f"[{fit['ci_low']:.3g}, {fit['ci_high']:.3g}]")
        slopes.append({"method": method, "activation": act, "m": int(width),
                       "slope": "-" if fit["slope"] is None else f"{fit['slope']:.3g}",
                       f"{int(confidence * 100)}% interval": interval, "points": fit["n"],
                       "dropped": fit["dropped"], "O(eps^2) slope": 2})
    return pd.DataFrame(rows), pd.DataFrame(slopes)



def kkt_bound_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Theorem 2's KKT study, one row per instance (a kkt_bound cell): its shape, whether it is
    in the theorem's scope (m d/(2n) >= 1; the rest are controls, not scored), the starts, the
    certified KKT points, the uncertified starts, the non-degenerate KKT points above the float64
    floor, the degenerate ones, the largest non-degenerate loss and floor, the growth R_small /
    C_hat when testable, and the instance's verdict line (``kkt_bound.instance_verdict``).

    ``frame``: the results table's rows of the ``kkt_bound`` task (columns ``n``, ``d``, ``width``,
    ``width_ratio``, ``activation``, ``repetition`` and ``kkt_bound_*``); rows without the
    study are left out."""
    import pandas as pd

    from ..core.records import KKT_BOUND_SUMMARY
    from .kkt_bound import instance_verdict

    rows = []
    have = frame[frame["kkt_bound_starts"].notna()] if "kkt_bound_starts" in frame else frame.iloc[0:0]
    for _, r in have.sort_values(["n", "d", "width", "activation", "repetition"]).iterrows():
        s = {k: (None if pd.isna(r[f"kkt_bound_{k}"]) else r[f"kkt_bound_{k}"]) for k in KKT_BOUND_SUMMARY}
        word, text = instance_verdict(s)
        ratio = float(r["width_ratio"])
        growth = r.get("kkt_bound_growth")
        rows.append({"n": int(r["n"]), "d": int(r["d"]), "m": int(r["width"]), "m·d/(2n)": round(ratio, 4),
                     "σ": r["activation"], "scope": "in scope" if ratio >= 1 else "control (out of scope)",
                     "starts": int(s["starts"]), "KKT": int(s["kkt_points"]), "not certified": int(s["not_certified"]),
                     "above floor": int(s["above_floor"]), "degenerate": int(s["degenerate"]),
                     "max loss": _fmt_num(s["max_loss"]), "max floor": _fmt_num(s["max_floor"]),
                     "growth": "-" if growth is None or pd.isna(growth) else f"{float(growth):.3g}",
                     "verdict": f"{word}: {text}"})
    return pd.DataFrame(rows)


def _fmt_num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2g}"
