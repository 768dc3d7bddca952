"""`python -m minitransfer.cli`."""
import sys

from minitransfer.cli import main

sys.exit(main())
