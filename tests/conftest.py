import sys
from pathlib import Path

# The cross-package tests import their helpers from layout.py beside this file.
sys.path.insert(0, str(Path(__file__).parent))
