"""Threshold-consistent margin (TCM) loss, the OPIS threshold-consistency metric, retrieval.

TCM penalises hard positive pairs (cosine below ``m+``) and hard negative pairs (cosine
above ``m-``) on top of any base metric-learning loss, so one global cosine threshold
behaves alike for every class. OPIS measures how much per-class utilities of a threshold
vary over a false-accept-rate range.
"""

from marginkit.tcm.utility import calibration_range, f_beta_utility

__version__ = "0.1.0"

__all__ = ["calibration_range", "f_beta_utility"]
