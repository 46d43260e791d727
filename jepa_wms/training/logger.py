"""Training logs: an always-on CSV (append-only, so a resumed run continues the same file) and TensorBoard when the
``tensorboard`` package is installed."""

from __future__ import annotations

import csv
from pathlib import Path

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
]


class RunLogger:
    def __init__(self, out_dir: str | Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.csv_path = Path(out_dir) / "log.csv"
        self._tb = None
        if not enabled:
            return
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = LOG_COLUMNS
        if self.csv_path.exists():
            # A resumed run keeps the columns its file was started with (an older version may have had fewer).
            with open(self.csv_path, newline="") as f:
                self.columns = next(csv.reader(f), None) or LOG_COLUMNS
        else:
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(LOG_COLUMNS)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional extra: jepa-wms[tensorboard]
            return
        self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a killed run resumed from its last checkpoint re-logs those steps)."""
        if not self.enabled or not self.csv_path.exists():
            return
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerows(kept)

    def log(self, step: int, epoch: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "epoch": epoch, "split": split, **values}
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _fmt(v: object) -> object:
    return f"{v:.6g}" if isinstance(v, float) else v
