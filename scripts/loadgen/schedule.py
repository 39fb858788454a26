"""Open-loop arrival schedule: intended send times, independent of how fast the log answers."""
from __future__ import annotations

import random
from typing import Awaitable, Callable, Iterator

ARRIVALS = ("constant", "poisson")
YIELD_EVERY = 32
TICK_S = 0.001


class Schedule:
    """Intended send offsets (seconds from the start) for a constant or Poisson arrival process.

    Constant arrivals are computed as i / rate (no accumulated float drift); Poisson arrivals are
    a seeded sum of exponential gaps with the same mean rate, so runs are reproducible.
    """

    def __init__(self, rate: float, arrival: str = "constant", seed: int = 0):
        if arrival not in ARRIVALS:
            raise ValueError(f"arrival {arrival!r}: one of {ARRIVALS}")
        if not rate > 0:
            raise ValueError(f"rate {rate!r} must be positive")
        self.rate = float(rate)
        self.arrival = arrival
        self._rng = random.Random(seed)
        self._index = 0
        self._t = 0.0

    def next(self) -> float:
        if self.arrival == "constant":
            t = self._index / self.rate
        else:
            t = self._t
            self._t += self._rng.expovariate(self.rate)
        self._index += 1
        return t

    def until(self, end: float) -> Iterator[float]:
        """All intended offsets strictly before `end` (a fresh schedule is consumed)."""
        while True:
            t = self.next()
            if t >= end:
                return
            yield t


async def pace(schedule: Schedule, duration: float, clock: Callable[[], float],
               sleep: Callable[[float], Awaitable[None]], dispatch: Callable[[float, float], None]) -> int:
    """Call dispatch(intended_offset, lag_s) for every arrival before `duration`, as close to its time
    as the event loop allows. Never waits for responses. Returns how many arrivals were dispatched.

    `clock` returns seconds since the schedule's start; `sleep` is asyncio.sleep (or a fake).
    Sleeps are at least one 1 ms tick, and every wake-up dispatches everything already due, so an
    arrival leaves at or after its intended time (lag >= 0, normally < 1 ms), never early.
    """
    count = 0
    behind = 0
    for intended in schedule.until(duration):
        now = clock()
        if intended > now:
            # Never sleep less than a tick: the event loop's timers have 1 ms resolution, so shorter
            # sleeps only spin. Arrivals that fall due meanwhile go out together (lag < ~1 ms).
            while intended > now:
                await sleep(max(intended - now, TICK_S))
                now = clock()
            behind = 0
        elif (behind := behind + 1) % YIELD_EVERY == 0:
            await sleep(0)  # running behind: still let responses be read between bursts
            now = clock()
        dispatch(intended, max(0.0, now - intended))
        count += 1
    return count
