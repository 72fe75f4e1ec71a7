"""The training budget: wall-clock time, tokens or FLOPs, and the progress p in [0, 1] spent of it.

A budget is written `24h`, `90m`, `45s` (time), `2e9tok` / `500Mtok` (tokens) or `1.5e18flop` / `3Pflop`
(FLOPs). Tokens and FLOPs make runs on different machines comparable; time is what cramming uses.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

UNITS = {"h": ("seconds", 3600.0), "m": ("seconds", 60.0), "s": ("seconds", 1.0),
         "tok": ("tokens", 1.0), "flop": ("flops", 1.0)}
SCALE = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kMGTPE]?)(h|m|s|tok|flop)s?\s*$")


@dataclass(frozen=True)
class Budget:
    """What the run may spend: `amount` of `kind` ("seconds", "tokens" or "flops")."""

    kind: str
    amount: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        match = PATTERN.match(str(text))
        if not match:
            raise ValueError(f"budget {text!r}: write it as time (24h, 90m, 45s), tokens (2e9tok, 500Mtok) "
                             "or FLOPs (1.5e18flop, 3Pflop)")
        number, prefix, unit = match.groups()
        kind, factor = UNITS[unit]
        if prefix and kind == "seconds":
            raise ValueError(f"budget {text!r}: a time budget takes no k/M/G prefix")
        amount = float(number) * SCALE[prefix] * factor
        if amount <= 0:
            raise ValueError(f"budget {text!r}: must be positive")
        return cls(kind, amount)


def seconds(key: str, text: str) -> float:
    """A time setting `key` (30m, 45s) in seconds; 0 or 0s is 0."""
    text = str(text).strip()
    if text in ("0", "0s"):
        return 0.0
    budget = Budget.parse(text)
    if budget.kind != "seconds":
        raise ValueError(f"train config: {key}={text!r} must be a time such as 30m")
    return budget.amount


class Meter:
    """Spent budget across resumes: seconds (only while the clock runs), tokens and FLOPs (the sum of each
    micro-batch's own: a masking rate that changes changes the FLOPs per token).

    `progress()` is the fraction of the budget spent, capped at 1. `flops_per_token` is the run's nominal
    rate, for estimates only (and the FLOPs of a checkpoint that predates the FLOP sum).
    """

    def __init__(self, budget: Budget, flops_per_token: float, spent: dict | None = None):
        self.budget, self.flops_per_token = budget, flops_per_token
        spent = spent or {}
        self.seconds = float(spent.get("seconds", 0.0))
        self.tokens = int(spent.get("tokens", 0))
        self.flops = float(spent.get("flops", self.tokens * flops_per_token))
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self) -> None:
        """Pause the clock (time that is not the run's to spend)."""
        self.seconds, self._started = self.elapsed(), None

    def elapsed(self) -> float:
        running = 0.0 if self._started is None else time.perf_counter() - self._started
        return self.seconds + running

    def tokens_at_end(self, tokens_per_s: float | None = None) -> float | None:
        """Tokens read by the end of the budget: exact for a token or FLOP budget; for a time budget an
        estimate at `tokens_per_s` over the time left (None without a rate)."""
        if self.budget.kind == "tokens":
            return self.budget.amount
        if self.budget.kind == "flops":
            return self.tokens + max(0.0, self.budget.amount - self.flops) / self.flops_per_token
        if not tokens_per_s:
            return None
        return self.tokens + tokens_per_s * max(0.0, self.budget.amount - self.elapsed())

    def add(self, tokens: int, flops: float) -> None:
        self.tokens += tokens
        self.flops += flops

    def spent(self, kind: str | None = None) -> float:
        kind = kind or self.budget.kind
        return {"seconds": self.elapsed(), "tokens": float(self.tokens), "flops": self.flops}[kind]

    def progress(self) -> float:
        return min(1.0, self.spent() / self.budget.amount)

    def progress_at(self, tokens: int, flops: float) -> float:
        """The progress this meter will show once `tokens` and `flops` are spent (a time budget: now's)."""
        if self.budget.kind == "seconds":
            return self.progress()
        spent = float(tokens) if self.budget.kind == "tokens" else flops
        return min(1.0, spent / self.budget.amount)

    def state_dict(self) -> dict:
        return {"seconds": self.elapsed(), "tokens": self.tokens, "flops": self.flops}
