"""Cost models: predict the GPU time of one iteration's batch."""

from .base import BREAKDOWN_KEYS, CostModel
from .linear import LLAMA3_70B_TP4, LinearCoefficients, LinearCostModel
from .roofline import RooflineCostModel, RooflineParams

__all__ = ["BREAKDOWN_KEYS", "CostModel", "LLAMA3_70B_TP4", "LinearCoefficients", "LinearCostModel",
           "RooflineCostModel", "RooflineParams"]
