"""``normbench claims``: one verdict per claim of the paper, computed from the results tables.

``verdicts`` holds the claims and their tests, ``report`` writes ``claims.csv`` /
``claims.md`` and renders them for the leaderboard, ``cli`` registers the command.
"""
