"""The training-loop skeleton both trainers run on: checkpoint cadence, stopping, the run log.

No network is trained: a step is a stand-in that returns made-up logs, so these tests check
the skeleton's own promises in milliseconds (the trainers' tests check them end to end).
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from itertools import count

import pytest
import torch

from dpst.train.skeleton import (
    CONFIG_FILE,
    METRICS_FILE,
    Outcome,
    ProgressLine,
    RunLog,
    due,
    run_steps,
)


@dataclass
class Cadence:
    steps: int = 7
    log_every: int = 1
    image_every: int = 0
    val_every: int = 0
    checkpoint_every: int = 3


def _run(cadence: Cadence, start: int = 0, raise_at: int | None = None, **kwargs):
    """``(outcome, saves)``: the skeleton over stand-in steps, every save as
    ``(step, finished, interrupted)``."""
    saves: list[tuple[int, bool, bool]] = []

    def take_step(step: int, item: int):
        assert item == step  # one item per step, from where the run left off
        if step == raise_at:
            signal.raise_signal(signal.SIGTERM)
        return {}, torch.zeros(1), {"loss": float(step)}

    batches = count(start + 1)
    outcome = run_steps(cadence, start, batches, take_step,
                        lambda *save: saves.append(save), None, **kwargs)  # fmt: skip
    return outcome, saves


def test_intervals_count_from_the_runs_first_step_and_zero_means_never():
    assert [s for s in range(1, 10) if due(s, 3)] == [3, 6, 9]
    assert not any(due(s, 0) for s in range(10))


def test_checkpoints_at_the_interval_and_at_the_end():
    outcome, saves = _run(Cadence())
    assert saves == [(3, False, False), (6, False, False), (7, True, False)]
    assert outcome == Outcome(7, False, {"loss": 7.0})


def test_stop_at_writes_a_checkpoint_and_a_resume_keeps_the_cadence():
    outcome, saves = _run(Cadence(), stop_at=4)
    assert saves == [(3, False, False), (4, False, True)]
    assert outcome == Outcome(4, False, {"loss": 4.0})  # not a signal
    outcome, saves = _run(Cadence(), start=4)
    assert saves == [(6, False, False), (7, True, False)]
    outcome, saves = _run(Cadence(), start=7)  # a finished run takes no step
    assert saves == [] and outcome == Outcome(7, False, {})


def test_a_stop_signal_ends_the_step_in_progress_with_a_checkpoint():
    before = signal.getsignal(signal.SIGTERM)
    outcome, saves = _run(Cadence(), raise_at=2)
    assert saves == [(2, False, True)]
    assert outcome == Outcome(2, True, {"loss": 2.0})
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is given back


def test_every_rank_stops_when_any_rank_was_asked_to():
    outcome, saves = _run(Cadence(), agree=lambda flag: True)
    assert saves == [(1, False, True)] and outcome.interrupted


def test_the_run_log_writes_the_start_and_forgets_metrics_past_a_resume(tmp_path, capsys):
    line = ProgressLine((("L1", "l1", ".3f"),))
    shown: list[int] = []

    def validate():
        shown.append(1)
        return {"val/score": 0.5}, [torch.zeros(3, 4, 4)]

    cadence = Cadence(steps=4, val_every=2)
    header = {"config": {"lr": 1.0}, "resumed_from_step": 0, "reconfigured": {}}
    log = RunLog(tmp_path, cadence, header, line, progress=True, validate=validate)
    for step in range(1, 5):
        log.after_step(step, {"loss": 1.0, "l1": 0.25, "lr": 1e-3}, {}, torch.zeros(1))
    log.close()
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and printed[0].startswith("step 1/4  loss 1.0000  L1 0.250  lr ")
    assert printed[0].endswith(" s/step")  # validation scores are not printed for this line
    assert len(shown) == 2 and log.val_scalars == {"val/score": 0.5}
    rows = [json.loads(r) for r in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 2, 3, 4, 4]

    header = {**header, "resumed_from_step": 2}
    RunLog(tmp_path, cadence, header, line, progress=False).close()
    rows = [json.loads(r) for r in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 2]
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["resumed_from_step"] == 2
    history = (tmp_path / "config_history.jsonl").read_text().splitlines()
    assert [json.loads(h)["step"] for h in history] == [0, 2]


@pytest.mark.parametrize("validation", [False, True])
def test_a_trainer_may_print_its_validation_scores(tmp_path, capsys, validation):
    header = {"config": {}, "resumed_from_step": 0, "reconfigured": {}}
    log = RunLog(tmp_path, Cadence(steps=1, val_every=1), header, ProgressLine((), validation),
                 progress=True, validate=lambda: ({"val/psnr": 30.0}, []))  # fmt: skip
    log.after_step(1, {"loss": 1.0, "lr": 1e-3}, {}, torch.zeros(1))
    log.close()
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:] == (["val/psnr 30.000"] if validation else [])
