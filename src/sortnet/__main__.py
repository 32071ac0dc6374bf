"""`python -m sortnet ...` is the same as the `sortnet` command."""
import sys

from sortnet.cli import main

sys.exit(main())
