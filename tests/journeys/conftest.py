"""Journey tests: a researcher's day through the real hub, proxy and sandbox (see journey_support.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
