"""Training logs: an always-on CSV and TensorBoard when the ``tensorboard`` package is installed.

Rows are appended one at a time. A resumed run first drops what was logged after its checkpoint (the steps it redoes)
by writing a new file (with the columns an older file lacks) and renaming it over the old one, so a kill at any moment
leaves the old or the new log, never a half-written one; TensorBoard is told to drop those steps too (``purge_step``).
Planning evaluations during training (``auto_eval.py``) log ``split="eval"`` rows at their epoch's last step.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoint import atomic_write_bytes

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

LOG_COLUMNS = [
    "step",
    "epoch",
    "split",
    "lr",
    "loss",
    "loss_visual",
    "loss_tf_visual",
    "loss_rollout_last",
    "loss_proprio",
    "loss_reg",
    "latent_std",
    "grad_norm",
    "samples_per_s",
    "loss_recon",
    # split "eval" rows: the planning evaluation of the epoch's checkpoint (train.eval_every)
    "success_rate",
    "mean_final_distance",
]


class RunLogger:
    def __init__(self, out_dir: str | Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / "log.csv"
        self.columns = LOG_COLUMNS
        self._tb: SummaryWriter | None = None
        self._tb_missing = False
        self._purge_step: int | None = None
        if not enabled:
            return
        rows = self._rows()
        if rows is None:
            atomic_write_bytes(self.csv_path, _csv_text([LOG_COLUMNS]))
        else:
            # A resumed run keeps the columns its file was started with (an older version may have had fewer).
            self.columns = rows[0]

    def _rows(self) -> list[list[str]] | None:
        """The file's complete rows, header first; None for no file, or one without a header (left empty by a
        kill in an older version's rewrite): a new log then starts."""
        if not self.csv_path.exists():
            return None
        text = self.csv_path.read_bytes().decode()
        if not text.endswith("\n"):  # the last row was cut short by a kill
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.reader(io.StringIO(text, newline="")))
        return rows if rows and rows[0][:1] == ["step"] else None

    def truncate_after(self, step: int) -> None:
        """Keep the rows up to ``step`` (a run resumed from its checkpoint at ``step`` logs the later ones again)."""
        if not self.enabled:
            return
        rows = self._rows() or [self.columns]
        # The rewrite also adds the columns an older version's file lacks, empty in its rows.
        self.columns = rows[0] + [c for c in LOG_COLUMNS if c not in rows[0]]
        pad = [""] * (len(self.columns) - len(rows[0]))
        kept = [r + pad for r in rows[1:] if len(r) == len(rows[0]) and int(r[0]) <= step]
        atomic_write_bytes(self.csv_path, _csv_text([self.columns, *kept]))
        self._purge_step = step + 1

    def logged_epochs(self, split: str) -> set[int]:
        """The epochs of the complete rows of ``split`` in the file (rank 0's logger; empty when disabled)."""
        rows = (self._rows() or [[]]) if self.enabled else [[]]
        return {int(r[1]) for r in rows[1:] if len(r) == len(rows[0]) and r[2] == split}

    def log(self, step: int, epoch: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "epoch": epoch, "split": split, **values}
        _append_row(self.csv_path, _csv_text([[_fmt(row.get(c, "")) for c in self.columns]]).decode())
        tb = self._tensorboard()
        if tb is not None:
            for k, v in values.items():
                tb.add_scalar(f"{split}/{k}", v, step)

    def _tensorboard(self) -> SummaryWriter | None:
        if self._tb is None and not self._tb_missing:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional extra: jepa-wms[tensorboard]
                self._tb_missing = True
                return None
            # Readers drop the events of earlier sessions from purge_step on: those of the steps being redone.
            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self._purge_step)
        return self._tb

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _append_row(path: Path, text: str) -> None:
    with open(path, "a", newline="") as f:
        f.write(text)


def _csv_text(rows: list[list[object]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def _fmt(v: object) -> object:
    return f"{v:.6g}" if isinstance(v, float) else v
