"""One try of one upstream, as the audit record, metrics and spans see it."""
from __future__ import annotations

from dataclasses import dataclass

from ..durations import micros


@dataclass(slots=True)
class Attempt:
    upstream: str
    model: str | None
    started: float                  # time.monotonic()
    ended: float | None = None      # headers arrived or the attempt failed
    status: int | None = None       # the upstream's HTTP status, None when it gave none
    error: str | None = None        # connect | timeout | status | breaker_open | insufficient_quota | ...
    served: bool = False            # this attempt's answer went to the client
    probe: bool = False             # let through by a half-open breaker
    repair: bool = False            # a guard asked again for a corrected answer (structured output)

    def as_record(self) -> dict:
        end = self.ended if self.ended is not None else self.started
        rec = {"upstream": self.upstream, "model": self.model, "status": self.status,
               "error": self.error, "seconds": micros(max(0.0, end - self.started))}
        if self.repair:   # only then: records of other exchanges keep their shape
            rec["repair"] = True
        return rec
