"""``python -m ttc_lib.pipeline run --profile cpu``: what ``make run`` calls (see runner.py)."""

import sys

from ttc_lib.pipeline.runner import main

sys.exit(main())
