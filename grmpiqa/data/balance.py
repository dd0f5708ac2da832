"""Re-balance decoding processes and model threads during a run, from measured costs.

A fixed pool of decoding processes is started; a :class:`DecodeGate` (a
semaphore they share) sets how many of them decode at once, and the model's
threads are set with ``torch.set_num_threads``. The workers add the CPU time
each photo's decode took; :class:`Balancer` takes the CPU time the main process (the
model's threads) spends on each batch,
and every few batches hands both costs to :func:`~grmpiqa.data.policy.split_cores`.

Memory stays bounded by the pool, not by the split: at most ``pool`` photos
are decoded at full size at once, and the loader holds at most
``PREFETCH_BATCHES * pool`` squashed batches (``batch * 3 * crop * crop``
bytes each, 4.8 MB at batch 32 and crop 224).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from grmpiqa.data.policy import Costs, Split, describe, estimate, split_cores

log = logging.getLogger("grmpiqa")
PREFETCH_BATCHES = 4  # per decoding process: the loader's prefetch_factor
#: Batches whose costs decide each split; the first batch's model time (first-call
#: costs, text features) is left out.
WINDOW = 4
#: A new split is taken only when it is estimated this much faster than the current one.
HYSTERESIS = 1.03


class DecodeGate:
    """How many of the pool's decoders may decode at once, and what their photos cost.

    The main process holds the tokens it withdraws; a decoder takes one per photo.
    """

    def __init__(self, pool: int) -> None:
        self.pool = pool
        self._tokens = multiprocessing.Semaphore(pool)
        self._cost = multiprocessing.Array("d", 2)  # CPU seconds, photos
        self._held = 0  # tokens the main process holds back

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_held": 0}

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        with self._tokens:
            start = time.thread_time()
            try:
                yield
            finally:
                self.record(time.thread_time() - start)

    def record(self, seconds: float) -> None:
        """One photo decoded in ``seconds`` of CPU time."""
        with self._cost.get_lock():
            self._cost[0] += seconds
            self._cost[1] += 1

    def take(self) -> tuple[float, int]:
        """CPU seconds and photos decoded since the last call."""
        with self._cost.get_lock():
            seconds, photos = self._cost[0], int(self._cost[1])
            self._cost[0] = self._cost[1] = 0.0
        return seconds, photos

    def allow(self, decoders: int) -> None:
        """Let ``decoders`` decode at once; tokens a decoder holds are withdrawn later."""
        target = self.pool - max(1, min(decoders, self.pool))
        while self._held > target:
            self._tokens.release()
            self._held -= 1
        while self._held < target and self._tokens.acquire(block=False):
            self._held += 1

    @property
    def allowed(self) -> int:
        return self.pool - self._held


class Balancer:
    """Times the model between the batches it is handed, and re-splits the cores."""

    def __init__(self, gate: DecodeGate, cores: int, *,
                 set_threads: Callable[[int], None], get_threads: Callable[[], int],
                 clock: Callable[[], float] = time.process_time,
                 window: int = WINDOW) -> None:
        self.gate = gate
        self.cores = cores
        self._set_threads, self._get_threads = set_threads, get_threads
        self.clock = clock
        self.decode: deque[tuple[float, int]] = deque(maxlen=window)
        self.model: deque[tuple[float, int]] = deque(maxlen=window)
        self.split: Split | None = None
        self.history: list[Split] = []

    def costs(self) -> Costs | None:
        decoded = sum(n for _, n in self.decode)
        modelled = sum(n for _, n in self.model)
        if not decoded or not modelled:
            return None
        return Costs(sum(s for s, _ in self.decode) / decoded,
                     sum(s for s, _ in self.model) / modelled)

    def observe(self, decode: tuple[float, int], model_s: float, photos: int) -> None:
        """``decode``: CPU seconds and photos; ``model_s``: CPU seconds for ``photos``."""
        if decode[1]:
            self.decode.append(decode)
        if photos:
            self.model.append((model_s, photos))

    def rebalance(self) -> Split | None:
        """Apply the split the recent costs call for; the split, when it changed."""
        costs = self.costs()
        if costs is None:
            return None
        chosen = split_cores(self.cores, costs, max_workers=self.gate.pool)
        if self.split is not None and (chosen == self.split or estimate(
                self.cores, costs, chosen) < HYSTERESIS * estimate(self.cores, costs, self.split)):
            return None
        first = self.split is None
        self.split = chosen
        self.history.append(chosen)
        self.gate.allow(chosen.workers)
        self._set_threads(chosen.threads)
        log.debug("%s: %s", "decoding and model split" if first else "re-balanced",
                  describe(self.cores, costs, chosen))
        return chosen

    def watch(self, batches: Iterable[Any], photos: Callable[[Any], int]) -> Iterator[Any]:
        """``batches``, with the CPU time the consumer spends on each (the model) in between:
        CPU time, not wall-clock time times threads, so that other jobs sharing the cores
        inflate neither side's cost; the model's thread count is restored at the end."""
        before = self._get_threads()
        try:
            for number, batch in enumerate(batches):
                start = self.clock()
                yield batch
                spent = self.clock() - start
                if number == 0:  # the model's first call has one-off costs
                    self.observe(self.gate.take(), 0.0, 0)
                    continue
                self.observe(self.gate.take(), spent, photos(batch))
                if number == 1 or number % (self.model.maxlen or 1) == 0:
                    self.rebalance()
        finally:
            self._set_threads(before)
