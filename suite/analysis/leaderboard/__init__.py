"""Leaderboards and reports from results directories.

``load`` reads the trainer's tables, ``aggregate`` groups trials, ``render``
writes Markdown/CSV/LaTeX/HTML, ``plots`` draws the figures, ``cli`` wires the
``normbench leaderboard`` command. Import submodules directly; this package
stays import-light for the main CLI.
"""
