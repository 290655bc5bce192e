"""``python -m benchmarks.gpu``: see the package docstring."""

import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main())
