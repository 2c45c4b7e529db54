"""`--minutes M`: a run planned for the time the user has, on this device and store.

Nobody can know in advance how many kimg a budget buys: it depends on the device, the model and the load. So
the run measures itself. After a short warm-up (first calls, allocator, oneDNN's kernels) it times its own steps
for a window of a few seconds, and sets the run's length (--kimg) to the images it can show D before the deadline,
less what the run's end costs (the last tick's grid and log row and the final checkpoint, as measured at the ticks
so far). Every tick end plans again from the speed over the whole session, ticks and checkpoints included, so a
load spike that slows the run shortens it, not its deadline; each step of a one-process run also checks the deadline
itself, so it stops on time even if the speed collapses between two ticks. Under torchrun the ranks plan together
at tick ends, and every few steps they agree whether any rank's clock says the deadline is near (the loop's
`_stop_or_deadline`), so a long tick or a slow stretch within one does not carry the run past its deadline.

Everything that follows --kimg follows the plan: the run's end, --lr-decay's last fraction, --schedule cosine,
the progress bar. The wall time a run has spent against its budget, and the costliest tick end it has timed, are
counters of its checkpoints, so a resumed run continues the same plan with what is left and keeps time for its end
from its first step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

WARMUP_STEPS = 3  # first iterations left out of the speed: they pay for one-time work
MIN_WINDOW_S, MAX_WINDOW_S, WINDOW_SHARE = 5.0, 30.0, 0.02  # the first measurement: 2 % of the budget, 5-30 s
END_MARGIN = 1.5  # the run's end is reserved at this multiple of its measured cost


@dataclass(frozen=True)
class Plan:
    """A run's length for its budget, and what it was worked out from."""

    total_nimg: int  # images to show D: the run's --kimg x 1000
    img_per_s: float  # the speed assumed, tick ends and checkpoints included
    seconds_left: float  # of the budget, when planned
    source: str  # where the speed came from, for the plan's line

    def describe(self, minutes: float) -> str:
        return (f"plan: {minutes:g} min -> {self.total_nimg / 1000:.1f} kimg at {self.img_per_s:.1f} img/s "
                f"({self.source}); replanned at every tick, so a slower stretch shortens the run, not the deadline")


def plan_total_nimg(cur_nimg: int, seconds_left: float, img_per_s: float, end_seconds: float,
                    step_images: int) -> int:
    """Whole steps of `step_images` that fit in `seconds_left` at `img_per_s` with `end_seconds` kept for the run's
    end, counted from `cur_nimg`; at least one step, so a run always ends with a checkpoint of what it did."""
    usable = max(0.0, seconds_left - END_MARGIN * end_seconds)
    steps = max(1, int(usable * img_per_s // step_images))
    return cur_nimg + steps * step_images


class Budget:
    """The budget's clock and the speed measurements one training session makes against it."""

    def __init__(self, minutes: float, seconds_used: float, cur_nimg: int, step_images: int,
                 clock: Callable[[], float] = time.monotonic, end_seconds: float = 0.0,
                 longest_nimg: int | None = None) -> None:
        self.seconds = minutes * 60.0
        self.minutes = minutes
        self.step_images = step_images
        self.longest_nimg = longest_nimg  # no plan goes beyond it (--kimg's limit), whatever the budget buys
        self.clock = clock
        self._session_start, self._used_before = clock(), seconds_used
        self._steps = 0
        self._last_step_at, self._last_step_s = self._session_start, 0.0  # when the last step ended; its length
        self._measure_from: tuple[float, int] | None = None  # (time, nimg) once warmed up
        self.window = min(MAX_WINDOW_S, max(MIN_WINDOW_S, WINDOW_SHARE * self.seconds))
        # The costliest tick end seen (grid, log row, checkpoint), earlier sessions' included: a resumed run must
        # keep time for its end before it has timed one of its own.
        self.end_seconds = end_seconds
        self._tick_end_began = self._session_start
        self.plan: Plan | None = None

    def seconds_used(self) -> float:
        """Wall time spent against the budget: earlier sessions' and this one's."""
        return self._used_before + self.clock() - self._session_start

    def seconds_left(self) -> float:
        return self.seconds - self.seconds_used()

    def step_done(self, cur_nimg: int) -> Plan | None:
        """After each iteration: the first plan once the measurement window has passed (else None)."""
        self._steps += 1
        now = self.clock()
        self._last_step_s, self._last_step_at = now - self._last_step_at, now
        if self._steps == WARMUP_STEPS:
            self._measure_from = (self.clock(), cur_nimg)
        if self.plan is not None or self._measure_from is None:
            return None
        started, nimg = self._measure_from
        elapsed = self.clock() - started
        if elapsed < self.window:
            return None
        return self._replan(cur_nimg, (cur_nimg - nimg) / elapsed,
                            f"measured over {(cur_nimg - nimg) // self.step_images} steps in {elapsed:.0f} s")

    def out_of_time(self, steps_ahead: int = 1) -> bool:
        """Whether the run must end now: `steps_ahead` more steps like the last (the steps until it is next asked),
        then its last tick and checkpoint, would pass the deadline."""
        return self.seconds_left() <= steps_ahead * self._last_step_s + END_MARGIN * self.end_seconds

    def tick_end_begins(self) -> None:
        """The steps of a tick are done; what follows (grid, log row, checkpoint) is the tick's end."""
        self._tick_end_began = self.clock()

    def end_seconds_so_far(self) -> float:
        """The costliest tick end, counting the one under way up to now (for the checkpoint it is about to write)."""
        return max(self.end_seconds, self.clock() - self._tick_end_began)

    def tick_done(self, cur_nimg: int) -> Plan | None:
        """At a tick's end (its grid, row and any checkpoint written, timed from `tick_end_begins`): plan again
        from the session's speed so far. None while the first measurement is still running."""
        self.end_seconds = max(self.end_seconds, self.clock() - self._tick_end_began)
        self._last_step_at = self.clock()  # the next step's time is its own, not the tick end's
        if self._measure_from is None or (self.clock() - self._measure_from[0]) < self.window:
            return None
        started, nimg = self._measure_from
        elapsed = self.clock() - started
        if elapsed <= 0 or cur_nimg <= nimg:
            return None
        return self._replan(cur_nimg, (cur_nimg - nimg) / elapsed, f"measured over the {elapsed:.0f} s trained")

    def _replan(self, cur_nimg: int, img_per_s: float, source: str) -> Plan:
        left = self.seconds_left()
        total = plan_total_nimg(cur_nimg, left, img_per_s, self.end_seconds, self.step_images)
        if self.longest_nimg is not None and total > self.longest_nimg:
            total = max(cur_nimg, self.longest_nimg)
            source += f"; capped at {total / 1000:g} kimg, the longest run accepted, so it ends before its deadline"
        self.plan = Plan(total, img_per_s, left, source)
        return self.plan
