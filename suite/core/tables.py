"""Tables for people: aligned plain text, Markdown and LaTeX from rows of strings.

One renderer for every table the suite prints or writes (leaderboards,
claims, benchmarks, simulations, the sweep plan), so escaping and alignment
are decided once. Cells arrive already formatted: formatting numbers is the
caller's business, because only it knows the unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DASH = "—"

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _rows(header: Sequence[str], rows: Sequence[Sequence[object]]) -> tuple[list[str], list[list[str]]]:
    head = [str(h) for h in header]
    body = [[str(c) for c in row] for row in rows]
    for row in body:
        if len(row) != len(head):
            raise ValueError(f"a row has {len(row)} cells for {len(head)} columns: {row}")
    return head, body


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = (), rule: bool = True
) -> str:
    """Columns padded to their widest cell, two spaces apart; ``right``: indices aligned right."""
    head, body = _rows(header, rows)
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(head)]
    align = set(right)

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in align else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    lines = [line(head)]
    if rule:
        lines.append(line(["-" * w for w in widths]))
    lines += [line(r) for r in body]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    bold: Sequence[Sequence[bool]] | None = None,
    escape: bool = True,
) -> str:
    """A GitHub-flavoured Markdown table (pipes escaped); ``bold`` marks cells to set in bold;
    ``escape=False`` for cells that are Markdown already (the generated reference pages)."""
    head, body = _rows(header, rows)
    cell = _md_cell if escape else str
    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for i, row in enumerate(body):
        cells = [cell(c) for c in row]
        if bold is not None:
            cells = [f"**{c}**" if b and c else c for c, b in zip(cells, bold[i])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tex_escape(text: str) -> str:
    escaped = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    return escaped.replace("±", r"$\pm$").replace(DASH, "---").replace("Δ", r"$\Delta$").replace("×", r"$\times$")


def latex_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align: str, bold: Sequence[Sequence[bool]] | None = None
) -> str:
    """A booktabs ``tabular`` to ``\\input`` (needs ``\\usepackage{booktabs}``)."""
    head, body = _rows(header, rows)
    lines = [
        "% requires \\usepackage{booktabs}",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(tex_escape(c) for c in head) + r" \\",
        "\\midrule",
    ]
    for i, row in enumerate(body):
        cells = [tex_escape(c) for c in row]
        if bold is not None:
            cells = [f"\\textbf{{{c}}}" if b else c for c, b in zip(cells, bold[i])]
        lines.append(" & ".join(cells) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def duration_text(seconds: Any) -> str:
    """``42s``, ``3m05s``, ``2h07m``; a dash when unknown (None, NaN, not a number)."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return DASH
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
