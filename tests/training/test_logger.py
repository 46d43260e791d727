"""Training CSV log: fixed columns for a new file, and a resumed file keeps the columns it was started with."""

import csv

from jepa_wms.training.logger import LOG_COLUMNS, RunLogger


def test_new_log_has_every_column(tmp_path):
    log = RunLogger(tmp_path, enabled=True)
    log.log(5, 0, "train", {"loss": 1.5, "loss_recon": 0.25})
    log.close()
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == LOG_COLUMNS
    assert rows[0]["loss"] == "1.5" and rows[0]["loss_recon"] == "0.25"


def test_resumed_log_keeps_its_header(tmp_path):
    old = LOG_COLUMNS[:-1]  # a file written before the last column existed
    with open(tmp_path / "log.csv", "w", newline="") as f:
        csv.writer(f).writerow(old)
    log = RunLogger(tmp_path, enabled=True)
    log.log(7, 1, "val", {"loss": 2.0, "loss_recon": 0.5})
    log.close()
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == old and len(rows[1]) == len(old)
    assert rows[1][:3] == ["7", "1", "val"]
