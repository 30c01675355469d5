"""Marginalization models: any marginal of discrete data in one forward pass.

``f_theta(x_S)`` is an unnormalised log-marginal of a partial assignment and ``p_phi`` an
any-order conditional; they are tied by self-consistency and trained by maximum
likelihood (AO-ARM, then distillation) or from an unnormalised log-density.
"""

from marginkit.mam.chains import (
    EnumeratedTarget,
    HiddenMarkovChain,
    PottsChain,
    fit_independent,
    independent_log_marginal,
)
from marginkit.mam.config import (
    DemoConfig,
    EBMConfig,
    MarginalConfig,
    MLEConfig,
    ModelSettings,
    SampleConfig,
)
from marginkit.mam.data import DiscreteDataset, load_codes, load_digits_binary
from marginkit.mam.encoding import (
    UNKNOWN,
    binarize_images,
    check_query,
    check_values,
    join_partial,
    load_array,
    one_hot_inputs,
    split_partial,
)
from marginkit.mam.ising import IsingLattice, all_states
from marginkit.mam.losses import (
    aoarm_loss,
    eb_kl_loss,
    eb_regression_loss,
    random_orders,
    ranks_from_orders,
    sc_penalty,
    self_consistency_errors,
    standardized_advantage,
)
from marginkit.mam.metrics import (
    aoarm_log_likelihood,
    bits_per_dim,
    correlation_filter,
    energy_metrics,
    exact_metrics,
    likelihood_metrics,
    marginal_error_by_size,
    mixture_of_orders,
    self_consistency_metrics,
    time_marginals,
)
from marginkit.mam.model import MarginalizationModel, NetworkConfig
from marginkit.mam.sampling import (
    ancestral_sample,
    censor_and_resample,
    complete,
    gibbs_refresh,
    inpaint,
    ratio_sample,
)
from marginkit.mam.train import build_model, load_model, train_ebm, train_mle

__version__ = "0.1.0"

__all__ = [
    "all_states",
    "ancestral_sample",
    "aoarm_log_likelihood",
    "aoarm_loss",
    "binarize_images",
    "bits_per_dim",
    "build_model",
    "censor_and_resample",
    "check_query",
    "check_values",
    "complete",
    "correlation_filter",
    "DemoConfig",
    "DiscreteDataset",
    "eb_kl_loss",
    "eb_regression_loss",
    "EBMConfig",
    "energy_metrics",
    "EnumeratedTarget",
    "exact_metrics",
    "fit_independent",
    "gibbs_refresh",
    "HiddenMarkovChain",
    "independent_log_marginal",
    "inpaint",
    "IsingLattice",
    "join_partial",
    "likelihood_metrics",
    "load_array",
    "load_codes",
    "load_digits_binary",
    "load_model",
    "marginal_error_by_size",
    "MarginalConfig",
    "MarginalizationModel",
    "mixture_of_orders",
    "MLEConfig",
    "ModelSettings",
    "NetworkConfig",
    "one_hot_inputs",
    "PottsChain",
    "random_orders",
    "ranks_from_orders",
    "ratio_sample",
    "SampleConfig",
    "sc_penalty",
    "self_consistency_errors",
    "self_consistency_metrics",
    "split_partial",
    "standardized_advantage",
    "time_marginals",
    "train_ebm",
    "train_mle",
    "UNKNOWN",
]
