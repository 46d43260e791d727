"""Training logs: fixed columns for a new file, a resumed file keeps its own; the rewrite of a resume survives a kill,
drops torn rows, and TensorBoard drops the redone steps."""

import csv

import pytest

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


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _three_rows(tmp_path):
    log = RunLogger(tmp_path)
    for step in (1, 2, 3):
        log.log(step, 0, "train", {"loss": float(step)})
    log.close()
    return _rows(tmp_path / "log.csv")


def test_a_kill_while_the_log_is_rewritten_loses_nothing(tmp_path, monkeypatch):
    before = _three_rows(tmp_path)

    class Killed(BaseException):
        pass

    real_writer = csv.writer

    def dying_writer(f, *args, **kwargs):  # the kill comes after the first row reached the file
        w = real_writer(f, *args, **kwargs)

        class Dying:
            def writerows(self, rows):
                w.writerow(next(iter(rows)))
                f.flush()
                raise Killed

            def __getattr__(self, name):
                return getattr(w, name)

        return Dying()

    monkeypatch.setattr(csv, "writer", dying_writer)
    with pytest.raises(Killed):
        RunLogger(tmp_path).truncate_after(2)
    monkeypatch.undo()
    assert _rows(tmp_path / "log.csv") == before
    RunLogger(tmp_path).truncate_after(2)
    assert _rows(tmp_path / "log.csv") == before[:3]


@pytest.mark.parametrize("content", ["", "3,0,train,0.001,1.5\n4,0,tr"])
def test_an_empty_or_headerless_log_starts_over(tmp_path, content):
    (tmp_path / "log.csv").write_text(content)
    log = RunLogger(tmp_path)
    log.truncate_after(3)
    log.log(4, 0, "train", {"loss": 2.0})
    log.close()
    rows = _rows(tmp_path / "log.csv")
    assert rows[0] == LOG_COLUMNS and [r[0] for r in rows[1:]] == ["4"]


def test_torn_rows_are_dropped_on_resume(tmp_path):
    before = _three_rows(tmp_path)
    with open(tmp_path / "log.csv", "a") as f:
        f.write("4,0,tra")  # a row cut short by a kill, no newline
    RunLogger(tmp_path).truncate_after(5)
    assert _rows(tmp_path / "log.csv") == before


def test_tensorboard_drops_the_steps_a_resume_redoes(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    _three_rows(tmp_path)
    log = RunLogger(tmp_path)
    log.truncate_after(1)  # resumed from a checkpoint at step 1: steps 2 and 3 are redone
    for step in (2, 3):
        log.log(step, 0, "train", {"loss": 10.0 * step})
    log.close()
    shown: list[tuple[int, float]] = []  # what TensorBoard shows: a START marks where earlier sessions are cut
    for path in sorted((tmp_path / "tensorboard").iterdir()):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                shown = [(s, v) for s, v in shown if s < event.step]
            shown += [(event.step, v.tensor.float_val[0]) for v in event.summary.value if v.tag == "train/loss"]
    assert shown == [(1, 1.0), (2, 20.0), (3, 30.0)]


def test_a_resume_adds_the_columns_an_older_log_lacks(tmp_path):
    old = LOG_COLUMNS[:-2]  # written before the eval columns existed
    with open(tmp_path / "log.csv", "w", newline="") as f:
        csv.writer(f).writerows([old, ["3", "0", "train", *[""] * (len(old) - 3)]])
    log = RunLogger(tmp_path, enabled=True)
    log.truncate_after(3)
    log.log(3, 1, "eval", {"success_rate": 0.5})
    log.close()
    rows = _rows(tmp_path / "log.csv")
    assert rows[0] == LOG_COLUMNS and all(len(r) == len(LOG_COLUMNS) for r in rows)
    assert rows[2][rows[0].index("success_rate")] == "0.5"
    assert log.logged_epochs("eval") == {1}
