"""``python -m sycophancy_eval_kit.saa_data build ...``: the same as ``syco-saa build ...``."""

import sys

from sycophancy_eval_kit.saa_data.cli import main

if __name__ == "__main__":
    sys.exit(main())
