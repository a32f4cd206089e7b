"""The CP-SAT optimum of small offline workloads: the model (:mod:`.model`) and the deepening search
(:mod:`.solve`). ``from baselines.optimal import solve_optimal`` is the entry point."""

from .model import ALL_SUBSET_CUTS_UP_TO, IntegerLinearCost, ModelBuildTimeout, ScheduleInstance, ScheduleModel
from .solve import (OBJECTIVES, OptimalResult, ReplayScheduler, best_heuristic_schedule, iteration_bound,
                    serial_schedule, solve_optimal, trivial_lower_bound)

__all__ = ["ALL_SUBSET_CUTS_UP_TO", "OBJECTIVES", "IntegerLinearCost", "ModelBuildTimeout", "OptimalResult", "ReplayScheduler",
           "ScheduleInstance", "ScheduleModel", "best_heuristic_schedule", "iteration_bound", "serial_schedule",
           "solve_optimal", "trivial_lower_bound"]
