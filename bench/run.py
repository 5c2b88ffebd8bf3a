"""Run the side-by-side benchmark (same as ``python -m fastmlp bench``).

Usage: python bench/run.py [--workloads small mnist wide] [--repeats 5] [--out bench/results]
"""

import sys

from fastmlp.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
