"""Evaluate any policy on a fixed, seeded set of held-out workloads: objective, gap to the optimum, gap to the
best heuristic; a table and a plot.

One concern per module: :mod:`.seeds` (evaluation and training seeds, disjoint), :mod:`.rollouts` (running
a policy or a heuristic on one workload), :mod:`.optimum_cache` (solver optima on disk), :mod:`.report` (the
gap table and plot) and :mod:`.harness` (:func:`evaluate`, all of them together).
"""

from .harness import evaluate
from .optimum_cache import OptimumCache, OptimumRecord, solver_settings
from .report import REPORTED_METRICS, GapReport
from .rollouts import (ActionFn, action_masks, as_action_fn, episode_summary, run_episode,
                       run_scheduler, runnable_heuristics, simulator_config, workload_for_seed)
from .seeds import EVAL_SEED_OFFSET, TrainingSeedWrapper, evaluation_seeds, training_seeds

__all__ = ["EVAL_SEED_OFFSET", "REPORTED_METRICS", "ActionFn", "GapReport", "OptimumCache", "OptimumRecord",
           "TrainingSeedWrapper", "action_masks", "as_action_fn", "episode_summary", "evaluate", "evaluation_seeds",
           "run_episode", "run_scheduler", "runnable_heuristics", "simulator_config",
           "solver_settings", "training_seeds", "workload_for_seed"]
