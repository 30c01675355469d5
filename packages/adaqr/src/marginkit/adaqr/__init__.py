"""AdaQR: conversational query-rewriter alignment by DPO with answer-likelihood rewards.

Stages (each a module and a ``marginkit-adaqr`` command): embedded data (``embedded``),
SFT / sampling / DPO (``training``), retrieval (``retrieval``), reward (``reward``,
``readers``), preference pairs (``pairs``) and trec_eval-exact metrics (``metrics``).
Importing this package is cheap: transformers and TRL load only inside training calls.
"""

from marginkit.adaqr.config import AdaQRConfig, apply_preset
from marginkit.adaqr.data import Passage, Turn, read_passages, read_qrels, read_run, read_turns
from marginkit.adaqr.metrics import crosscheck_pytrec_eval, evaluate_run, turn_metrics
from marginkit.adaqr.pairs import PreferencePair, build_pairs
from marginkit.adaqr.prompts import render_prompt
from marginkit.adaqr.readers import CausalLMReader, UnigramReader
from marginkit.adaqr.retrieval import BM25Retriever, DenseRetriever, Hit, canonical_order
from marginkit.adaqr.reward import (
    RewardScorer,
    ScoredCandidate,
    aggregate_loss,
    posterior_log_weights,
)

__version__ = "0.1.0"

__all__ = [
    "AdaQRConfig",
    "BM25Retriever",
    "CausalLMReader",
    "DenseRetriever",
    "Hit",
    "Passage",
    "PreferencePair",
    "RewardScorer",
    "ScoredCandidate",
    "Turn",
    "UnigramReader",
    "aggregate_loss",
    "apply_preset",
    "build_pairs",
    "canonical_order",
    "crosscheck_pytrec_eval",
    "evaluate_run",
    "posterior_log_weights",
    "read_passages",
    "read_qrels",
    "read_run",
    "read_turns",
    "render_prompt",
    "turn_metrics",
]
