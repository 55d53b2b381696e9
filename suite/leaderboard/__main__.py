"""``python -m suite.leaderboard RESULTS_DIR...``"""
import sys

from suite.leaderboard.cli import main

sys.exit(main())
