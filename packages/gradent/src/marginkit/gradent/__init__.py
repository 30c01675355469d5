"""Gradient entanglement in margin-based preference losses (DPO and its relatives).

Modules: :mod:`~marginkit.gradent.losses` (the loss family, torch only),
:mod:`~marginkit.gradent.logprobs` (response log-probs of a causal LM),
:mod:`~marginkit.gradent.measure` (per-pair gradient inner products, cosines, cases),
:mod:`~marginkit.gradent.predict` (first-order changes), :mod:`~marginkit.gradent.monitor`
(a transformers ``TrainerCallback`` and plain hook), :mod:`~marginkit.gradent.normalized`
and :mod:`~marginkit.gradent.masks` (mitigations), :mod:`~marginkit.gradent.heatmap`
(token-level gradient cosines), :mod:`~marginkit.gradent.batch` (full-batch Gram
predictor). The monitor and the tiny models import transformers; this
package root and the losses do not.
"""

from marginkit.gradent.batch import BatchPrediction, batch_predict, gradient_gram
from marginkit.gradent.heatmap import TokenHeatmap, plot_token_heatmap, token_heatmap
from marginkit.gradent.logprobs import PairBatch, build_pair_batch, pair_logps, tokenize_pairs
from marginkit.gradent.losses import LOSS_NAMES, PreferenceLossOutput, preference_loss
from marginkit.gradent.measure import PairStats, measure_pairs, select_parameters
from marginkit.gradent.predict import predict_changes

__version__ = "0.1.0"

__all__ = [
    "BatchPrediction",
    "LOSS_NAMES",
    "PairBatch",
    "PairStats",
    "PreferenceLossOutput",
    "TokenHeatmap",
    "batch_predict",
    "build_pair_batch",
    "gradient_gram",
    "measure_pairs",
    "pair_logps",
    "plot_token_heatmap",
    "predict_changes",
    "preference_loss",
    "select_parameters",
    "token_heatmap",
    "tokenize_pairs",
]
