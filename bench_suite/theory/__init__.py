"""The paper's two theorems as measurements (docs/theory.md).

Theorem 1 (slides, "Narrow nets have strong expressivity"): for m >= 2n/d, around the mirrored
LeCun init (MLI) there is a zero-loss global minimum and a region where every stationary point is
global; the proof rests on the full rank of the Jacobian J(w; v) = d f(X) / d W. Theorem 2
("Trainability results"): with the paired output layer, MLI and ||W - W0||_F <= eps, every KKT
point has loss O(eps^2). This module measures both:

- :func:`jacobian_stats`: rank, smallest nonzero and largest singular value of J at init (exact
  SVD in float64, skipped with its size above :data:`MAX_JACOBIAN_ENTRIES`), next to the rank
  law :func:`predicted_rank` (min(nK, md/2) under MLI, min(nK, md) under LeCun init);
- :func:`kkt_stats`: the KKT residual of the constrained problem at the end of training;
- :func:`loglog_slope`: the fitted exponent of final loss against eps, with its interval (a
  description of the eps sweep: Theorem 2 is an upper bound, scored by ``kkt_bound``);
- :func:`linearized_loss_floor`: the loss of the net's linearization at init (the tight-eps limit
  the width threshold comes from); :func:`tight_eps_learning_rates`: the step sizes projected GD
  can use there (the width_threshold task's defaults);
- :func:`rank_table`, :func:`threshold_table`, :func:`eps_table`, :func:`kkt_bound_table`: the
  tables of the "Theory" report section, from results;
- Theorem 2 as a bound (modules imported on their own: numpy and scipy): ``kkt_solver`` (the
  ball-constrained problem with V trained, solved to certified KKT points in float64),
  ``kkt_study`` (adversarial starts, an instance's record part), ``kkt_bound`` (the rule).

Conventions (ours; the paper states the theorems for K = 1 and the loss 1/2 sum of squares):

- J is **stacked** over outputs: row ``i*K + k`` is d f_k(x_i) / d W, so J is (nK) x (md) and the
  rank law reads min(nK, md/2). For K = 1 this is Theorem 1's J. Stacking is the Jacobian of
  the whole map W -> f(X) in R^{n x K}, whose rank is what fitting all nK targets needs; per
  output each block obeys the law with nK replaced by n.
- J is taken with the output weights fixed (Theorem 1's J(w; v)) at their *effective* values
  (m, K): for a paired output layer, [V_h; -V_h] (``model.effective_output_weights``).
- Losses are the engine's (``config.TrainConfig``): ``mse`` = mean over samples of the squared
  error summed over the K outputs (one-hot targets for labels), ``ce`` = mean cross-entropy.
- Everything is computed in float64 from the (float32) weights the engine returns.

torch is imported inside the functions that need it: ``plan`` prices the SVD with
:func:`jacobian_flops` and ``report`` builds tables without importing torch.
"""

from .floor import linearized_loss_floor, tight_eps_learning_rates
from .jacobian import (
    MAX_JACOBIAN_ENTRIES,
    activation_derivative,
    hidden_jacobian,
    jacobian_entries,
    jacobian_flops,
    jacobian_stats,
    predicted_rank,
    relu_dead_samples,
    relu_rank_bound,
    svd_flops,
)
from .kkt import ACTIVE_RTOL, kkt_residual, kkt_stats, loss_and_gradients, loss_value, network_output
from .section import record_section, wants_section
from .slope import loglog_slope
from .tables import eps_table, kkt_bound_table, rank_table, threshold_table

__all__ = [
    "ACTIVE_RTOL", "MAX_JACOBIAN_ENTRIES", "activation_derivative", "eps_table", "hidden_jacobian",
    "jacobian_entries", "jacobian_flops", "jacobian_stats", "kkt_bound_table", "kkt_residual", "kkt_stats",
    "linearized_loss_floor",
    "loglog_slope", "loss_and_gradients", "loss_value", "network_output", "predicted_rank", "rank_table",
    "record_section", "relu_dead_samples", "relu_rank_bound", "svd_flops", "threshold_table",
    "tight_eps_learning_rates", "wants_section",
]
