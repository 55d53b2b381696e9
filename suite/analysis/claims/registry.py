"""The claims registry: one object per claim and measure, owning its statement, units, judge and threshold.

Why a registry: `evaluate_claims` is a loop over it, and so are claims.csv,
claims.md, the docs block and the report page (they read the rows it produces).
Adding a claim is one `register(Claim(...))` with a units function (what the
test measures, from the `Context`) and a judge (`suite.analysis.claims.judge`),
plus its test; no other module changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from suite.analysis.claims.context import Context, Units
from suite.analysis.claims.definitions import ClaimRow


@dataclass(frozen=True)
class Claim:
    """A claim of the paper (or any other), the measure it is tested on, and how.

    ``units(ctx)`` returns what the test measures; ``judge(claim, units, ctx)`` turns them into
    one row per method and one pooled. ``normalizing_only``: a claim about losses that
    L2-normalize the embedding, "not applicable" to a method whose loss does not
    (`methods.base.SSLMethod.loss_normalizes_embedding`)."""

    claim: str
    measure: str
    statement: str
    test: str
    units: Callable[[Context], Units]
    judge: Callable[[Claim, Units, Context], list[ClaimRow]]
    statistic: str = ""
    threshold: float = 0.0
    claim_above: bool = True  # the claim says the value lies above the threshold (else below)
    tolerance: float = 0.0  # an identity's tolerance (judge_identity)
    normalizing_only: bool = False
    options: dict = field(default_factory=dict)  # anything else a judge reads

    @property
    def key(self) -> tuple[str, str]:
        return self.claim, self.measure

    def row(self, method: str) -> ClaimRow:
        """An empty row of this claim for ``method`` (inconclusive until judged)."""
        return ClaimRow(self.claim, self.measure, method, self.statement, self.test, statistic=self.statistic)

    def evaluate(self, ctx: Context) -> list[ClaimRow]:
        return self.judge(self, self.units(ctx), ctx)


REGISTRY: list[Claim] = []


def register(claim: Claim) -> Claim:
    """Add ``claim`` to the registry (replacing one with the same claim and measure)."""
    for i, existing in enumerate(REGISTRY):
        if existing.key == claim.key:
            REGISTRY[i] = claim
            return claim
    REGISTRY.append(claim)
    return claim


def unregister(claim: str, measure: str) -> None:
    """Remove a claim (tests that register a toy claim clean up with this)."""
    REGISTRY[:] = [c for c in REGISTRY if c.key != (claim, measure)]


def claim_of(claim: str, measure: str) -> Claim:
    return next(c for c in REGISTRY if c.key == (claim, measure))
