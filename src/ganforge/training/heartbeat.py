"""A line every HEARTBEAT_S seconds while no progress bar is drawn (output to a file: a notebook cell, nohup, a job
scheduler's log), so a run whose first tick is minutes away says from its first minute that it is alive, how fast
it goes and when the next tick and the end will come. Between ticks only: a tick's status line says the rest."""

from __future__ import annotations

import time
from collections.abc import Callable

from ganforge.training.report import duration_text

HEARTBEAT_S = 30.0


class Heartbeat:
    def __init__(self, echo: Callable[[str], None], enabled: bool, total_nimg: int | None, start_nimg: int) -> None:
        self.echo, self.enabled, self.total_nimg = echo, enabled, total_nimg
        self.start_nimg, self.start_time = start_nimg, time.perf_counter()
        self.last_line = self.start_time

    def beat(self, cur_nimg: int, tick_end_nimg: int) -> None:
        """Called after every step; prints only once HEARTBEAT_S seconds have passed since its last line. Reads a
        host clock: no device work."""
        now = time.perf_counter()
        if not self.enabled or now - self.last_line < HEARTBEAT_S:
            return
        self.last_line = now
        rate = (cur_nimg - self.start_nimg) / max(now - self.start_time, 1e-9)
        self.echo(progress_line(cur_nimg, self.total_nimg, rate, max(0, tick_end_nimg - cur_nimg)))


def progress_line(cur_nimg: int, total_nimg: int | None, img_per_s: float, to_tick: int) -> str:
    """`total_nimg` None: a --minutes run before its first plan, whose length is not known yet."""
    if total_nimg is None:
        return f"kimg {cur_nimg / 1000:.2f}  img/s {img_per_s:.0f}: measuring the speed to plan the run's length"
    if img_per_s <= 0:
        return f"kimg {cur_nimg / 1000:.2f} of {total_nimg / 1000:g}: warming up"
    return (f"kimg {cur_nimg / 1000:.2f} of {total_nimg / 1000:g}  img/s {img_per_s:.0f}  next tick in "
            f"~{duration_text(to_tick / img_per_s)}, done in ~{duration_text((total_nimg - cur_nimg) / img_per_s)}")
