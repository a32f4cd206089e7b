"""The CP-SAT optimum of small offline workloads and sound lower bounds on it: the model (:mod:`.model`), the
deepening search (:mod:`.solve`) and the bounds (:mod:`.bounds`). ``from baselines.optimal import solve_optimal`` is
the entry point; :func:`optimum_lower_bound` bounds instances far beyond what the search proves."""

from infermax_env.extras import require

require("optimal", "baselines.optimal (the CP-SAT optimum)")

from .bounds import (FixedChargeBound, TermBounds, bound_cuts, closed_form_terms, combine, fixed_charge_bound,
                     fixed_charge_cost, lower_bound, prefix_bounds, term_bounds)
from .model import (ALL_SUBSET_CUTS_UP_TO, BoundCuts, IntegerLinearCost, ModelBuildTimeout, ScheduleInstance,
                    ScheduleModel)
from .solve import (OBJECTIVES, OptimalResult, OptimumBound, ReplayScheduler, best_heuristic_schedule, iteration_bound,
                    normalize_schedule, optimum_lower_bound, serial_schedule, solve_optimal,
                    trivial_lower_bound)

__all__ = ["ALL_SUBSET_CUTS_UP_TO", "OBJECTIVES", "BoundCuts", "FixedChargeBound", "IntegerLinearCost",
           "ModelBuildTimeout", "OptimalResult", "OptimumBound", "ReplayScheduler", "ScheduleInstance",
           "ScheduleModel", "TermBounds", "best_heuristic_schedule", "bound_cuts", "closed_form_terms", "combine",
           "fixed_charge_bound", "fixed_charge_cost", "iteration_bound", "lower_bound", "normalize_schedule",
           "optimum_lower_bound", "prefix_bounds", "serial_schedule", "solve_optimal", "term_bounds",
           "trivial_lower_bound"]
