"""``normbench report``: the leaderboard, its curves and the claims as one self-contained HTML page
(also the ``html`` format of ``normbench leaderboard``).

Import-light: the main CLI imports `suite.analysis.report.cli` (and so this
package) to register the command, so pandas and Altair load only when a page
is built (``build_page`` and ``write_page`` are looked up on first use).
"""

from __future__ import annotations

__all__ = ["build_page", "write_page"]


def __getattr__(name: str):
    if name in __all__:
        import suite.analysis.report.page as page

        return getattr(page, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
