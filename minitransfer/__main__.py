"""`python -m minitransfer` runs the command line."""
import sys

from minitransfer.cli import main

sys.exit(main())
