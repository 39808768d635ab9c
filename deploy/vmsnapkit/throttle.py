"""Stay inside ARM's budgets: watch the rate-limit headers and slow the fan-out before Azure says 429.

ARM reports the tokens left in the subscription's bucket on every response
(`x-ms-ratelimit-remaining-subscription-reads|writes`); Resource Graph reports `x-ms-user-quota-remaining`
and `x-ms-user-quota-resets-after`. azure-core's RetryPolicy already honours 429 + Retry-After; this module
makes the kit ask less often when the budget runs low, so retries stay rare.
"""

import asyncio
import threading
import time

READ_REFILL_PER_S = 25.0  # ARM refills a subscription's read bucket (250 tokens) at 25 per second


class RateMonitor:
    """Collects the budget headers of every response (`observe` is the clients' raw_response_hook)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.remaining = {"reads": None, "writes": None}
        self.throttled = 0
        self.responses = 0
        self.graph_quota_remaining = None
        self.graph_resets_after = 0.0

    def observe(self, pipeline_response):
        resp = pipeline_response.http_response
        h = resp.headers
        with self._lock:
            self.responses += 1
            if resp.status_code == 429:
                self.throttled += 1
            for kind in ("reads", "writes"):
                value = h.get(f"x-ms-ratelimit-remaining-subscription-{kind}")
                if value is not None and value.strip().isdigit():
                    self.remaining[kind] = int(value)
            quota = h.get("x-ms-user-quota-remaining")
            if quota is not None and quota.strip().isdigit():
                self.graph_quota_remaining = int(quota)
                self.graph_resets_after = _hms(h.get("x-ms-user-quota-resets-after", "0:0:0"))

    def allowed(self, kind, ceiling):
        """How many requests may be in flight now, from the last known remaining budget."""
        left = self.remaining.get(kind)
        if left is None or left >= 100:
            return ceiling
        if left >= 50:
            return max(1, ceiling // 2)
        if left >= 20:
            return max(1, ceiling // 4)
        return 1

    def pause(self, kind):
        """Seconds to wait before the next request when the bucket is nearly empty (refill time)."""
        left = self.remaining.get(kind)
        if left is None or left >= 10:
            return 0.0
        return (10 - left) / READ_REFILL_PER_S

    def graph_wait(self):
        """Seconds to wait before the next Resource Graph query (quota of 15 per 5 s exhausted)."""
        if self.graph_quota_remaining is not None and self.graph_quota_remaining <= 0:
            return min(5.0, self.graph_resets_after)
        return 0.0


def _hms(text):
    try:
        h, m, s = (float(x) for x in text.split(":"))
        return h * 3600 + m * 60 + s
    except ValueError:
        return 0.0


class AdaptiveLimiter:
    """An async concurrency limit that follows RateMonitor.allowed(): `async with limiter: await call()`."""

    def __init__(self, monitor, kind="reads", ceiling=32):
        self.monitor, self.kind, self.ceiling = monitor, kind, max(1, int(ceiling))
        self._active = 0
        self._cond = None
        self.peak = 0
        self.min_limit = self.ceiling

    async def __aenter__(self):
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            while True:
                limit = self.monitor.allowed(self.kind, self.ceiling)
                self.min_limit = min(self.min_limit, limit)
                if self._active < limit:
                    break
                await self._cond.wait()
            self._active += 1
            self.peak = max(self.peak, self._active)
        wait = self.monitor.pause(self.kind)
        if wait:
            await asyncio.sleep(wait)
        return self

    async def __aexit__(self, *exc):
        async with self._cond:
            self._active -= 1
            self._cond.notify_all()


async def map_bounded(fn, items, workers):
    """await fn(item) for every item with at most `workers` coroutines alive (not one task per item, which
    for 10,000 VMs costs memory for nothing); results in input order."""
    items = list(items)
    results = [None] * len(items)
    queue = iter(enumerate(items))

    async def worker():
        for index, item in queue:  # one shared iterator: asyncio never interleaves inside next()
            results[index] = await fn(item)

    await asyncio.gather(*(worker() for _ in range(max(1, min(workers, len(items))))))
    return results


def sleep_for_graph_quota(monitor):
    wait = monitor.graph_wait()
    if wait:
        time.sleep(wait)
