"""`--minutes`: the planner on made-up speeds (deadline kept, the run's length, its schedules and the objective's
length-dependent parts set from the plan), a run under a simulated clock that slows down, resume in the middle of a
plan, and the flags' rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.training.budget import END_MARGIN, WARMUP_STEPS, Budget, plan_total_nimg
from ganforge.training.objective.adversary import Adversary
from ganforge.training.run_config import RunRequest, resolve_run

from data_slices import make_store
from run_helpers import TINY, FakeClock, assert_identical, budget_run


@pytest.fixture
def store(tmp_path: Path) -> Path:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    return make_store(tmp_path / "s.gfs", images).path


def test_the_plan_fills_the_time_left_with_whole_steps_and_keeps_the_end():
    # 100 s left at 50 img/s, the end measured at 4 s (reserved with a margin): whole steps of 16 images.
    total = plan_total_nimg(cur_nimg=160, seconds_left=100.0, img_per_s=50.0, end_seconds=4.0, step_images=16)
    assert total == 160 + int((100 - END_MARGIN * 4) * 50 // 16) * 16
    assert plan_total_nimg(160, 0.5, 50.0, 4.0, 16) == 176  # no time left: still one step, and a checkpoint


def test_the_budget_plans_after_its_window_and_again_at_ticks():
    now = [0.0]
    budget = Budget(minutes=10, seconds_used=0.0, cur_nimg=0, step_images=10, clock=lambda: now[0])
    assert budget.window == 12.0  # 2 % of 600 s
    nimg = 0
    for step in range(1, 100):
        now[0] += 1.0 if step > WARMUP_STEPS else 5.0  # slow first steps are left out
        nimg += 10
        plan = budget.step_done(nimg)
        if plan is not None:
            break
    assert plan is not None and plan.img_per_s == pytest.approx(10.0)
    assert plan.total_nimg == nimg + int((600 - now[0]) * 10 // 10) * 10
    # Twice as slow from here on: the next tick's plan ends sooner, at the same deadline.
    for _ in range(60):
        now[0] += 2.0
        nimg += 10
    budget.tick_end_begins()
    now[0] += 3.0  # the tick's grid, row and checkpoint
    later = budget.tick_done(nimg)
    assert later is not None and later.total_nimg < plan.total_nimg
    assert later.img_per_s < plan.img_per_s
    assert (later.total_nimg - nimg) / later.img_per_s <= budget.seconds_left() - END_MARGIN * 3.0 + 1e-9
    now[0] = 600 - END_MARGIN * 3.0
    assert budget.out_of_time()


def test_a_run_ends_by_its_deadline_when_the_device_slows_down(store, tmp_path, monkeypatch):
    # 100 img/s for the first 800 images, then 25 (a load spike): the plan shrinks, the deadline holds.
    clock = FakeClock(lambda nimg: 100.0 if nimg < 800 else 25.0)
    state, lines, run_dir = budget_run(store, tmp_path, clock, monkeypatch, minutes=0.5, tick_kimg=0.4)
    first_plan = next(line for line in lines if line.startswith("plan: 0.5 min"))
    planned_kimg = float(first_plan.split("-> ")[1].split(" kimg")[0])
    assert planned_kimg == pytest.approx(2.99, abs=0.1)  # 30 s at 100 img/s, less the warm-up
    done_kimg = state.counters.cur_nimg / 1000
    assert 0.8 < done_kimg < planned_kimg - 0.5  # shortened by the slow stretch
    assert state.counters.budget_seconds <= 30.0
    assert any(line.startswith("done: ") for line in lines)
    recorded = json.loads((run_dir / "config.json").read_text())["train"]
    assert recorded["minutes"] == 0.5 and recorded["kimg"] * 1000 >= state.counters.cur_nimg
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [e for e in events if e.get("event") == "plan"], "each plan is logged"


def test_a_cosine_schedule_runs_over_the_planned_length(store, tmp_path, monkeypatch):
    # The schedule's end is the plan's: the learning rate reaches a quarter at the budget's last step.
    state, _, run_dir = budget_run(store, tmp_path, FakeClock(80.0), monkeypatch, minutes=0.25, tick_kimg=0.4,
                                   schedule="cosine")
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if '"tick"' in line]
    assert rows[-1]["lr_g"] == pytest.approx(2e-4 / 4, rel=0.05)
    assert rows[0]["lr_g"] > 2e-4 * 0.9


def test_resume_in_the_middle_of_a_plan_is_bit_identical(store, tmp_path, monkeypatch):
    whole, _, whole_dir = budget_run(store, tmp_path / "whole", FakeClock(100.0), monkeypatch, minutes=0.3,
                                     tick_kimg=0.4)

    class Stop(Exception):
        pass

    def stop_at_tick_3(state, record):
        if state.counters.tick == 3:
            raise Stop

    with pytest.raises(Stop):
        budget_run(store, tmp_path / "split", FakeClock(100.0), monkeypatch, minutes=0.3, tick_kimg=0.4,
                   tick_hooks=(stop_at_tick_3,))
    clock = FakeClock(100.0)
    clock.nimg, clock.now = 800, 1000.0 + 8.0  # the clock's origin is its own: only its rate matters
    resumed, lines, split_dir = budget_run(store, tmp_path / "split", clock, monkeypatch, minutes=0.3,
                                           tick_kimg=0.4, run_dir=tmp_path / "split" / "run")
    assert any("resumed from" in line for line in lines)
    assert resumed.counters.cur_nimg == whole.counters.cur_nimg
    last = [sorted((folder / "checkpoints").glob("*"))[-1] for folder in (whole_dir, split_dir)]
    assert_identical(*last)


def test_a_budget_resumed_near_its_deadline_keeps_time_for_its_end(store, tmp_path, monkeypatch):
    # Tick ends cost 3 s (grid, checkpoint); a run resumed with 7 of its 18 s left must stop early enough to
    # write its last tick inside the budget, before it has timed a tick end of its own.
    class Stop(Exception):
        pass

    clock = FakeClock(100.0)

    def costly_tick_end(state, record):
        clock.now += 3.0

    def stop_at_tick_2(state, record):
        if state.counters.tick == 2:
            raise Stop

    with pytest.raises(Stop):
        budget_run(store, tmp_path, clock, monkeypatch, minutes=0.3, tick_kimg=0.8,
                   tick_hooks=(costly_tick_end, stop_at_tick_2))
    clock = FakeClock(100.0)
    clock.nimg = 800
    resumed, lines, _ = budget_run(store, tmp_path, clock, monkeypatch, minutes=0.3, tick_kimg=0.8,
                                   tick_hooks=(costly_tick_end,))
    assert any("resumed from" in line for line in lines)
    assert resumed.counters.budget_seconds <= 18.0
    assert resumed.counters.budget_end_seconds >= 3.0


def test_a_budget_keeps_its_end_cost_from_earlier_sessions():
    now = [0.0]
    budget = Budget(minutes=1, seconds_used=50.0, cur_nimg=0, step_images=10, clock=lambda: now[0],
                    end_seconds=4.0)
    now[0] = 10.0 - END_MARGIN * 4.0 - 0.5
    budget.step_done(10)
    assert budget.out_of_time()  # 10 s left, 6 s of them reserved for the end, and the last step took 3.5 s


def test_instance_noise_fades_over_the_planned_length_not_the_default_kimg(store, tmp_path, monkeypatch):
    seen: list[int] = []
    d_input = Adversary.d_input

    def noting_the_fade(self, images, cur_nimg):
        seen.append(self.instance_noise_nimg)
        return d_input(self, images, cur_nimg)

    monkeypatch.setattr(Adversary, "d_input", noting_the_fade)
    state, _, run_dir = budget_run(store, tmp_path, FakeClock(100.0), monkeypatch, minutes=0.2, tick_kimg=0.4,
                                   instance_noise=0.1)
    plans = [e["kimg"] for e in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
             if e.get("event") == "plan"]
    assert seen[0] == 100_000  # the default --kimg, until the first plan a few seconds in
    assert seen[-1] in {round(kimg * 1000) for kimg in plans}  # then the plan's, at every replan
    assert abs(seen[-1] - state.counters.cur_nimg) < 0.1 * state.counters.cur_nimg


def test_srgan_pretrains_for_its_share_of_the_plan():
    from ganforge.config import LossConfig, TrainConfig
    from ganforge.training.schemes.sr import SrObjective, with_run_length

    adversary = Adversary(None, [], None, instance_noise=0.1, instance_noise_nimg=100_000)  # type: ignore[arg-type]
    objective = SrObjective(adversary, None, pretrain_nimg=50_000)  # type: ignore[arg-type]
    planned = with_run_length(objective, TrainConfig(kimg=12.0, loss=LossConfig(pretrain=0.5, instance_noise=0.1)))
    assert planned.pretrain_nimg == 6_000 and planned.adversary.instance_noise_nimg == 12_000
    fixed = with_run_length(objective, TrainConfig(kimg=12.0, loss=LossConfig(instance_noise=0.1,
                                                                              instance_noise_kimg=3.0)))
    assert fixed.adversary.instance_noise_nimg == 3_000  # an anneal length given in kimg stays as given


def test_a_resume_with_less_than_the_time_spent_is_refused_touching_nothing(store, tmp_path, monkeypatch):
    state, _, run_dir = budget_run(store, tmp_path, FakeClock(100.0), monkeypatch, minutes=0.3, tick_kimg=0.4)
    spent = state.counters.budget_seconds / 60
    assert 0.2 < spent <= 0.3
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--minutes", "0.1", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert f"--minutes 0.1 is not beyond the {spent:.1f} minutes" in result.output
    assert "for 0.1 more, pass --minutes 1.1" in result.output
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_minutes_and_kimg_together_are_refused(store, tmp_path):
    with pytest.raises(ConfigError, match="--minutes plans"):
        resolve_run(RunRequest({("data",): str(store), ("minutes",): 5.0, ("kimg",): 10.0}))
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--minutes", "-1", "--dry-run"])
    assert result.exit_code != 0 and "--minutes" in result.output


@pytest.mark.slow
def test_gf_train_with_minutes_plans_and_records_the_run(store, tmp_path):
    import ganforge as gf

    run = gf.train(data=str(store), out=str(tmp_path), minutes=0.1, tick_kimg=0.2, progress=False,
                   echo=lambda _: None, **TINY)
    assert run.config.minutes == 0.1 and run.config.kimg != 100.0  # --kimg is the plan, not the default
    events = [json.loads(line) for line in (run.path / "log.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "plan" for e in events)
    assert run.config.kimg * 1000 == pytest.approx(max(e["nimg"] for e in events if "nimg" in e), abs=8)


def test_a_budget_that_buys_more_than_the_longest_run_is_capped_and_says_so():
    now = [0.0]
    budget = Budget(minutes=60, seconds_used=0.0, cur_nimg=0, step_images=10, clock=lambda: now[0],
                    longest_nimg=100_000)
    plan = None
    for nimg in range(10, 100_000, 10):
        now[0] += 0.01  # 1,000 img/s: the hour would buy 3,600 kimg
        plan = budget.step_done(nimg)
        if plan is not None:
            break
    assert plan is not None and plan.total_nimg == 100_000
    assert "capped at 100 kimg, the longest run accepted" in plan.source


def test_the_step_after_a_tick_end_is_timed_without_it():
    # A 20 s tick end (grid, checkpoint, a quality check) must not read as one 20 s step: with 336 s left,
    # 16 steps of 0.1 s and the end fit, and the deadline is not near.
    now = [0.0]
    budget = Budget(minutes=10, seconds_used=0.0, cur_nimg=0, step_images=10, clock=lambda: now[0])
    nimg = 0
    while now[0] < 600.0 - 336.0 - 20.1:
        now[0] += 0.1
        nimg += 10
        budget.step_done(nimg)
    budget.tick_end_begins()
    now[0] += 20.0
    budget.tick_done(nimg)
    now[0] += 0.1
    budget.step_done(nimg + 10)
    assert budget.seconds_left() == pytest.approx(336.0, abs=0.2)
    assert not budget.out_of_time(steps_ahead=16)


def test_a_fresh_budget_run_is_ended_by_its_deadline_not_by_the_default_kimg(store, tmp_path, monkeypatch):
    # A fast device covers the default --kimg (100) before its speed is measured; here a --kimg of 5 steps
    # stands in for it: the run must still train until its plan and deadline.
    state, lines, _ = budget_run(store, tmp_path, FakeClock(100.0), monkeypatch, minutes=0.2, tick_kimg=0.4,
                                 recorded_kimg=0.04)
    assert any(line.startswith("plan: 0.2 min") for line in lines), lines
    assert state.counters.cur_nimg > 800  # 12 s at 100 img/s, less the warm-up and the end
    assert any(line.startswith("done: ") for line in lines)


def test_a_damaged_config_json_mid_run_does_not_end_a_budget_run(store, tmp_path, monkeypatch):
    def half_saved(state, record):
        if state.counters.tick == 1:
            (tmp_path / "run" / "config.json").write_text('{"train": ')

    state, lines, run_dir = budget_run(store, tmp_path, FakeClock(100.0), monkeypatch, minutes=0.2, tick_kimg=0.2,
                                       tick_hooks=(half_saved,))
    assert any(line.startswith("done: ") for line in lines), lines
    assert json.loads((run_dir / "config.json").read_text())["train"]["kimg"] * 1000 == state.counters.cur_nimg


def test_a_whole_train_config_with_minutes_is_a_budget_run_not_a_contradiction(store):
    from ganforge.api import _paths_of
    from ganforge.config import TrainConfig

    resolved = resolve_run(RunRequest(_paths_of(TrainConfig(data=str(store), minutes=5.0))))
    assert resolved.config.minutes == 5.0
