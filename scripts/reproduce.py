"""The paper's grid from a clone: the same as the ``syco-reproduce`` console script.

    python scripts/reproduce.py --config scripts/configs/paper.yaml --dry_run
"""

import sys

from sycophancy_eval_kit.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
