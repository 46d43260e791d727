"""What a grid's table shows at a glance: success per setting as bars with error bars, and a pivot table (one axis
down, another across) shaped like the paper's planner table (planners × L1/L2).

The repetition axes (``eval.seed``, and ``epoch`` when a run's epochs are evaluated) are not settings: a setting's
value is the mean ± std (ddof = 0, as `pooled_stats`) of its cells over them, pooled when both are axes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .epochs import pooled_stats
from .media import _figure, _save

REPETITION_AXES = ("eval.seed", "epoch")


def _shown(value: Any) -> str:
    return "-".join(map(str, value)) if isinstance(value, list) else str(value)


def setting_axes(axes: Sequence[str]) -> list[str]:
    """The axes that are settings (all but the repetition axes), in grid order."""
    return [a for a in axes if a not in REPETITION_AXES]


def group_success(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, tuple[dict[str, Any], list[float]]]:
    """Success rates of ``rows`` grouped by their values of ``keys`` (first-seen order): a JSON key -> (the values,
    the success rates)."""
    groups: dict[str, tuple[dict[str, Any], list[float]]] = {}
    for r in rows:
        values = {k: r[k] for k in keys}
        groups.setdefault(json.dumps(values, sort_keys=True), (values, []))[1].append(float(r["success_rate"]))
    return groups


def _repeats(axes: Sequence[str]) -> str:
    reps = [a for a in axes if a in REPETITION_AXES]
    return " and ".join(reps) if reps else ""


def plot_grid_success(path: str | Path, rows: Sequence[dict[str, Any]], axes: Sequence[str]) -> Path:
    """One bar per setting (combination of the non-repetition axes): the mean success over the repetition axes,
    error bars their std."""
    keys = setting_axes(axes)
    groups = list(group_success(rows, keys).values())
    labels = ["\n".join(f"{k.rsplit('.', 1)[-1]}={_shown(v)}" for k, v in vals.items()) or "all" for vals, _ in groups]
    stats = [pooled_stats(rates) for _, rates in groups]
    fig, ax = _figure((max(4.0, 0.8 * len(groups) + 1.5), 4.5))
    x = np.arange(len(groups))
    ax.bar(x, [100 * s["mean"] for s in stats], yerr=[100 * s["std"] for s in stats], capsize=4, color="tab:blue")
    ax.set_xticks(x, labels, fontsize=7, rotation=0 if len(groups) <= 8 else 60)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success rate (%)")
    reps = _repeats(axes)
    ax.set_title("success per setting" + (f" (mean ± std over {reps})" if reps else ""))
    return _save(fig, path)


def pivot_table(
    rows: Sequence[dict[str, Any]], axes: Sequence[str], down: str | None = None, across: str | None = None
) -> str:
    """The success rates (%) as printed tables: one axis ``down`` (default the first setting axis), another
    ``across`` (default the second); one table per combination of the other setting axes, mean ± std over the
    repetition axes in each entry."""
    keys = setting_axes(axes)
    for name in (down, across):
        if name is not None and name not in keys:
            raise ValueError(f"grid: {name!r} is not a setting axis of the grid (axes: {', '.join(keys) or 'none'})")
    down = down or (keys[0] if keys else None)
    across = across or next((k for k in keys if k != down), None)
    rest = [k for k in keys if k not in (down, across)]
    reps = _repeats(axes)
    lines = [f"success rate (%){f', mean ± std over {reps}' if reps else ''}"]
    for values, _ in group_success(rows, rest).values():
        part = [r for r in rows if all(r[k] == v for k, v in values.items())]
        if values:
            lines.append(", ".join(f"{k}={_shown(v)}" for k, v in values.items()) + ":")
        lines += _one_table(part, down, across, bool(reps))
    return "\n" + "\n".join(lines) + "\n"


def _one_table(rows: Sequence[dict[str, Any]], down: str | None, across: str | None, spread: bool) -> list[str]:
    def distinct(key: str | None) -> list[Any]:
        out: list[Any] = []
        for r in rows:
            if key is None:
                return [None]
            if r[key] not in out:
                out.append(r[key])
        return out

    def entry(d: Any, a: Any) -> str:
        rates = [
            float(r["success_rate"])
            for r in rows
            if (down is None or r[down] == d) and (across is None or r[across] == a)
        ]
        if not rates:
            return "—"
        s = pooled_stats(rates)
        return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}" if spread else f"{100 * s['mean']:.1f}"

    columns, lefts = distinct(across), distinct(down)
    table = [[down or "", *(_shown(a) if across else "success" for a in columns)]]
    table += [[_shown(d) if down else "all", *(entry(d, a) for a in columns)] for d in lefts]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]

    def line(row: list[str]) -> str:
        return f"  {row[0]:<{widths[0]}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True))

    return [line(table[0]) + (f"   ({across})" if across else ""), *(line(row) for row in table[1:])]


__all__ = ["REPETITION_AXES", "group_success", "pivot_table", "plot_grid_success", "setting_axes"]
