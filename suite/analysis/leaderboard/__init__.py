"""Leaderboards and reports from results directories.

``board`` reads and aggregates results directories (`suite.analysis.load`,
``aggregate``, ``search``), ``render`` writes the Markdown/CSV/LaTeX tables,
``cli`` wires the ``normbench leaderboard`` command, whose figures and HTML page
come from `suite.analysis.report`. Import submodules directly; this package
stays import-light for the main CLI.
"""
