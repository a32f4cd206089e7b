"""SB3 agents for the InferMax envs: permutation-aware feature extractors, slot-scoring policies, builders
from readable configs, training callbacks, and evaluation by the gap to the optimum."""

from infermax_env.extras import require

require("sb3", "agents/ (the SB3 agents)")

from .builders import (ALGORITHMS, ObservationSpaceMismatchError, attach_metadata, build_model, load_agent,
                       load_config)
from .evaluation import EVAL_SEED_OFFSET, GapReport, OptimumCache, evaluate, evaluation_seeds, training_seeds
from .extractors import SlotSetExtractor
from .policies import MaskableSlotScoringPolicy, SlotScoringPolicy

__all__ = ["ALGORITHMS", "EVAL_SEED_OFFSET", "GapReport", "MaskableSlotScoringPolicy", "ObservationSpaceMismatchError",
           "OptimumCache", "SlotScoringPolicy", "SlotSetExtractor", "attach_metadata", "build_model", "evaluate",
           "evaluation_seeds", "load_agent", "load_config", "training_seeds"]
