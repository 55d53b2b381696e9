import sys

from suite.sweep.cli import main

sys.exit(main())
