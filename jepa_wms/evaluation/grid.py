"""``evaluate_grid``: one ordinary evaluation per combination of planning settings, and their table.

A grid file names axes, each a list of values of a ``plan.*``/``eval.*`` config key (``plan.planner: [cem, gd]``),
optional ``fixed:`` overrides applied to every cell, and with a training run optional ``epochs:`` (``N``: the last N
``epoch_NNN.pt``, or a list of epoch numbers), which becomes the ``epoch`` axis. Every cell is checked by the config
loader against the checkpoint's config before anything runs, and is then evaluated by `evaluate` into its own
folder ``OUT/cells/<slug>`` (which resumes on its own). ``OUT/results.csv`` (one row per finished cell) is rewritten
atomically after every cell; ``OUT/grid.yaml`` keeps the grid so that another one cannot mix its results in.
``eval.seed`` and ``epoch`` are the repetition axes: the plot and the pivot table show the mean ± std over them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import io
import itertools
import json
import logging
import multiprocessing
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..checkpoint import atomic_write_bytes, load_checkpoint
from ..config import ConfigError, config_from_dict
from ..runlock import folder_lock
from .epochs import last_epoch_checkpoints
from .evaluate import evaluate
from .grid_report import REPETITION_AXES, plot_grid_success

if TYPE_CHECKING:
    from ..slurm import SlurmOptions

_log = logging.getLogger(__name__)
_SECTIONS = ("plan", "eval")
_RESERVED = ("axes", "fixed", "epochs")
SUBMITTED = "slurm_job_id"  # in a cell folder: a SLURM job evaluates it (as training's separate evaluations)
TABLE_COLUMNS = ("success_rate", "episodes", "mean_final_distance", "planning_seconds_per_episode", "path")


@dataclass(frozen=True)
class GridSpec:
    """A parsed grid file: ``axes`` (config key -> list of values, in file order), ``fixed`` overrides (config key
    -> value) and ``epochs`` (None, a count of last epochs, or a list of epoch numbers)."""

    axes: dict[str, list[Any]]
    fixed: dict[str, Any]
    epochs: int | list[int] | None = None


@dataclass(frozen=True)
class Cell:
    """One combination: its axis values (``epoch`` included when epochs are an axis), folder name below
    ``OUT/cells``, checkpoint, ``key=value`` overrides, and the episode count and seed its evaluation plays."""

    values: dict[str, Any]
    slug: str
    checkpoint: Path
    overrides: tuple[str, ...]
    episodes: int
    seed: int


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{plan: {cost: [L1]}}`` and ``{plan.cost: [L1]}`` alike -> ``{'plan.cost': [L1]}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_grid_spec(grid: str | Path | Mapping[str, Any]) -> GridSpec:
    """Parse a grid file (or its mapping). Axes are the top-level keys (or those under ``axes:``) other than
    ``fixed`` and ``epochs``; each must be a non-empty list of distinct values. Config keys are checked later,
    against the checkpoint's config (`grid_cells`)."""
    if not isinstance(grid, Mapping):
        try:
            grid = yaml.safe_load(Path(grid).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"grid file {grid} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(grid, Mapping):
            raise ConfigError("a grid file maps config keys to lists of values, e.g. 'plan.cost: [L1, L2]'")
    axes = _flatten({k: v for k, v in grid.items() if k not in _RESERVED})
    axes.update(_flatten(grid.get("axes") or {}))
    fixed = _flatten(grid.get("fixed") or {})
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid axis '{key}' must be a non-empty list of values, got {values!r}")
        if len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
            raise ConfigError(f"grid axis '{key}' lists a value twice: {values!r}")
    if not axes:
        raise ConfigError("the grid names no axis (e.g. 'plan.cost: [L1, L2]')")
    if both := sorted(set(axes) & set(fixed)):
        raise ConfigError(f"grid key '{both[0]}' is both an axis and fixed")
    epochs = grid.get("epochs")
    bad_list = isinstance(epochs, list) and not (epochs and all(type(e) is int and e >= 0 for e in epochs))
    if epochs is not None and (bad_list or not isinstance(epochs, list) and (type(epochs) is not int or epochs < 1)):
        raise ConfigError(f"grid 'epochs' is {epochs!r}; expected N (the last N epochs) or a list of epoch numbers")
    return GridSpec(axes, fixed, epochs)


def _override(key: str, value: Any) -> str:
    # JSON is YAML: the config loader reads the value back with its type (the string "0" stays a string).
    return f"{key}={json.dumps(value)}"


def _slug_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "-"


def _slug(values: Mapping[str, Any], names: Mapping[str, str]) -> str:
    parts = []
    for key, value in values.items():
        shown = f"{value:03d}" if key == "epoch" else "-".join(map(str, value)) if isinstance(value, list) else value
        parts.append(f"{_slug_part(names[key])}-{_slug_part(str(shown))}")
    return "__".join(parts)


def _checkpoints(spec: GridSpec, checkpoint: Path | None, run: Path | None) -> dict[int | None, Path]:
    """The checkpoints the grid evaluates, by epoch number (None: the one checkpoint, no epoch axis)."""
    if (checkpoint is None) == (run is None):
        raise ValueError("grid: give one of --checkpoint or --run")
    if run is None:
        if spec.epochs is not None:
            raise ValueError("grid: 'epochs' selects checkpoints of a training run: use --run instead of --checkpoint")
        return {None: Path(checkpoint)}  # type: ignore[arg-type]
    if spec.epochs is None:
        return {None: run / "checkpoints" / "last.pt"}
    if isinstance(spec.epochs, int):
        found = last_epoch_checkpoints(run, spec.epochs)
    else:
        found = [run / "checkpoints" / f"epoch_{e:03d}.pt" for e in spec.epochs]
    return {int(p.stem.split("_")[1]): p for p in found}


def grid_cells(spec: GridSpec, checkpoint: str | Path | None = None, run: str | Path | None = None) -> list[Cell]:
    """Every cell of ``spec`` in order (the last axis varies fastest, epochs last), each one's overrides checked by
    the config loader against the checkpoint's config: an unknown key or a bad value fails here, naming it."""
    ckpts = _checkpoints(spec, None if checkpoint is None else Path(checkpoint), None if run is None else Path(run))
    for path in ckpts.values():
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
    from ..encoders.from_checkpoint import stored_config
    from ..planning.registry import build_planner

    first = next(iter(ckpts.values()))
    base = stored_config(load_checkpoint(first), first).to_dict()  # the runs' epochs share one config
    axes = dict(spec.axes)
    if None not in ckpts:
        axes["epoch"] = list(ckpts)
    short = {k: k.rsplit(".", 1)[-1] for k in axes}
    names = {k: short[k] if list(short.values()).count(short[k]) == 1 else k for k in axes}
    fixed = [_override(k, v) for k, v in spec.fixed.items()]
    cells, seen = [], {}
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo, strict=True))
        overrides = tuple(fixed + [_override(k, v) for k, v in values.items() if k != "epoch"])
        cfg = config_from_dict(base, overrides, only=_SECTIONS)
        build_planner(cfg.plan)  # a planner whose extra is missing (nevergrad) fails before any cell runs
        slug = _slug(values, names)
        if slug in seen:
            raise ConfigError(f"grid cells {seen[slug]} and {values} get the same folder name {slug!r}")
        seen[slug] = values
        cells.append(Cell(values, slug, ckpts[values.get("epoch")], overrides, cfg.eval.episodes, cfg.eval.seed))
    return cells


def cell_result(out_dir: Path, cell: Cell) -> dict[str, Any] | None:
    """The cell's ``results.json`` if its evaluation finished (all its episodes, its seed), else None."""
    path = out_dir / "cells" / cell.slug / "results.json"
    try:
        res = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return res if res.get("episodes") == cell.episodes and res.get("seed") == cell.seed else None


def _stored_spec(spec: GridSpec, cells: Sequence[Cell], checkpoint: Any, run: Any) -> dict[str, Any]:
    source = {"run": str(Path(run).resolve())} if run is not None else {"checkpoint": str(Path(checkpoint).resolve())}
    epochs = sorted({c.values["epoch"] for c in cells if "epoch" in c.values})
    return {**source, "epochs": epochs or None, "axes": spec.axes, "fixed": spec.fixed}


def _claim_grid(out_dir: Path, stored: dict[str, Any], overwrite: bool) -> None:
    """Write ``OUT/grid.yaml``; refuse an OUT that holds another grid unless ``overwrite`` (which discards it)."""
    path = out_dir / "grid.yaml"
    if path.exists():
        old = yaml.safe_load(path.read_text()) or {}
        if old != stored and not overwrite:
            differ = ", ".join(k for k in {**old, **stored} if old.get(k) != stored.get(k))
            raise FileExistsError(
                f"{out_dir} holds another grid (its {differ} differ; see {path}): use a new --out, or --overwrite "
                "to discard its results"
            )
    if overwrite:
        for name in ("results.csv", "results.parquet", "success.png", "grid.yaml"):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "cells", ignore_errors=True)
    atomic_write_bytes(path, yaml.safe_dump(stored, sort_keys=False).encode())


def write_table(out_dir: Path, rows: Sequence[dict[str, Any]], formats: Sequence[str] = ("csv",)) -> None:
    """``OUT/results.csv`` (and ``results.parquet`` with ``parquet`` in ``formats``), written atomically."""
    if not rows:
        return
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)
    atomic_write_bytes(out_dir / "results.csv", text.getvalue().encode())
    if "parquet" in formats:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # A Parquet column has one type: an axis mixing strings with numbers or lists is written as text.
        mixed = {k for k in rows[0] if len({isinstance(r[k], str) for r in rows}) > 1}
        mixed |= {k for k in rows[0] if any(isinstance(r[k], list) for r in rows)}
        table = [{k: json.dumps(v) if k in mixed and not isinstance(v, str) else v for k, v in r.items()} for r in rows]
        tmp = out_dir / "results.parquet.tmp"
        pq.write_table(pa.Table.from_pylist(table), tmp)
        os.replace(tmp, out_dir / "results.parquet")


def _row(cell: Cell, res: dict[str, Any]) -> dict[str, Any]:
    keys = TABLE_COLUMNS[:-1]
    return {**cell.values, **{k: res[k] for k in keys}, "path": f"cells/{cell.slug}"}


def _run_cell(checkpoint: str, folder: str, overrides: tuple[str, ...], device: str, progress: bool) -> None:
    evaluate(checkpoint, folder, overrides=overrides, device=device, show_progress=progress)


def _init_worker(limit_threads: bool) -> None:
    if limit_threads:
        import torch

        torch.set_num_threads(1)


@contextlib.contextmanager
def _worker_threads() -> Iterator[bool]:
    """One thread per worker process (N workers share the cores) unless the user set OMP_NUM_THREADS; yields
    whether it was set here. The variable must be in the environment the children start with."""
    if "OMP_NUM_THREADS" in os.environ:
        yield False
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield True
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


def evaluate_grid(
    grid: str | Path | Mapping[str, Any],
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    run: str | Path | None = None,
    workers: int = 1,
    device: str = "auto",
    overwrite: bool = False,
    formats: Sequence[str] = ("csv",),
    slurm: SlurmOptions | None = None,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate every cell of ``grid`` (a grid file, or its mapping) with ``checkpoint`` or the checkpoints of
    training run ``run``, each into ``out_dir/cells/<slug>``, ``workers`` cells at a time (in processes of their
    own), or submitted as SLURM jobs with ``slurm``. Cells already finished are not run again. Returns the rows of
    ``results.csv`` (finished cells, in grid order) and draws ``success.png``."""
    if workers < 1:
        raise ValueError(f"grid: --workers must be >= 1, got {workers}")
    unknown = sorted(set(formats) - {"csv", "parquet"})
    if unknown:
        raise ValueError(f"grid: unknown table format {unknown[0]!r} (csv, parquet)")
    if "parquet" in formats:
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ImportError("grid --format parquet needs pyarrow: pip install pyarrow") from None
    spec = load_grid_spec(grid)
    cells = grid_cells(spec, checkpoint, run)
    out_dir = Path(out_dir)
    with folder_lock(out_dir):  # two grid commands on one OUT would run the same cells
        _claim_grid(out_dir, _stored_spec(spec, cells, checkpoint, run), overwrite)

        def finished() -> dict[str, dict[str, Any]]:
            found = {c.slug: cell_result(out_dir, c) for c in cells}
            return {s: r for s, r in found.items() if r is not None}

        def rewrite() -> list[dict[str, Any]]:
            done = finished()
            rows = [_row(c, done[c.slug]) for c in cells if c.slug in done]
            write_table(out_dir, rows, formats)
            return rows

        todo = [c for c in cells if c.slug not in finished()]
        queued = [c for c in todo if (out_dir / "cells" / c.slug / SUBMITTED).exists()]
        for c in queued:
            job = (out_dir / "cells" / c.slug / SUBMITTED).read_text().strip()
            _log.warning(
                f"[grid] cells/{c.slug}: SLURM job {job} evaluates it and has not finished "
                f"(delete cells/{c.slug}/{SUBMITTED} to run it again)"
            )
        todo = [c for c in todo if c not in queued]
        _log.info(f"[grid] {len(cells)} cells, {len(cells) - len(todo) - len(queued)} finished, {len(todo)} to run")
        if slurm is not None:
            _submit(out_dir, todo, slurm, device)
        else:
            _run_local(out_dir, todo, workers, device, show_progress, lambda c: _report(c, rewrite(), len(cells)))
        rows = rewrite()
        if rows:
            plot_grid_success(out_dir / "success.png", rows, [k for k in cells[0].values])
    return rows


def _report(cell: Cell, rows: Sequence[dict[str, Any]], total: int) -> None:
    rate = next((r["success_rate"] for r in rows if r["path"] == f"cells/{cell.slug}"), float("nan"))
    _log.info(f"[grid] cells/{cell.slug}: {100 * rate:.1f} % success ({len(rows)} of {total} cells finished)")


def _run_local(out_dir: Path, todo: list[Cell], workers: int, device: str, progress: bool, done: Any) -> None:
    args = [(str(c.checkpoint), str(out_dir / "cells" / c.slug), c.overrides, device) for c in todo]
    if workers == 1 or len(todo) <= 1:
        for cell, a in zip(todo, args, strict=True):
            _run_cell(*a, progress)
            done(cell)
        return
    # spawn, not fork: a forked child of a process that already runs torch threads may hang.
    with _worker_threads() as limit:
        ctx = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(
            min(workers, len(todo)), mp_context=ctx, initializer=_init_worker, initargs=(limit,)
        )
        with pool:
            futures = {pool.submit(_run_cell, *a, False): cell for cell, a in zip(todo, args, strict=True)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    future.result()  # a cell's error stops the grid (the running cells finish first)
                    done(futures[future])
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def _submit(out_dir: Path, todo: list[Cell], slurm: SlurmOptions, device: str) -> None:
    """One SLURM job per cell (`slurm.submit_eval`); the cell folder remembers it, so a rerun submits it once."""
    from ..slurm import submit_eval

    for cell in todo:
        folder = out_dir / "cells" / cell.slug
        folder.mkdir(parents=True, exist_ok=True)
        job = submit_eval(cell.checkpoint, folder, slurm, overrides=list(cell.overrides), device=device)
        (folder / SUBMITTED).write_text(f"{job.job_id}\n")
        _log.info(f"[grid] cells/{cell.slug}: submitted SLURM job {job.job_id}")
    if todo:
        _log.info("[grid] rerun this command once the jobs have finished to write the table and the plot")


__all__ = [
    "REPETITION_AXES",
    "Cell",
    "GridSpec",
    "cell_result",
    "evaluate_grid",
    "grid_cells",
    "load_grid_spec",
    "write_table",
]
