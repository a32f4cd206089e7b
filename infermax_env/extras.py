"""The optional extras of the infermax-env package and a check that names the missing one.

The core install (the simulator, the envs, the wrappers and the heuristic baselines) needs only gymnasium, numpy,
numba, matplotlib and tqdm. Everything else is an extra: ``pip install 'infermax-env[sb3]'`` and so on.
"""

from __future__ import annotations

from importlib.util import find_spec

EXTRAS: dict[str, tuple[str, ...]] = {
    "sb3": ("torch", "stable_baselines3", "sb3_contrib"),   # agents/, train.py
    "optimal": ("ortools",),                                # baselines.optimal (CP-SAT)
    "ray": ("ray",),                                        # infermax_env.ray_pool (evaluation on a Ray cluster)
    "rllib": ("ray", "torch"),                              # agents.rllib (training with RLlib)
    "torchrl": ("torchrl", "tensordict", "torch"),          # infermax_env.torchrl_support
    "tianshou": ("tianshou", "torch"),                      # infermax_env.tianshou_support
    "video": ("moviepy",),                                  # gymnasium's RecordVideo over render_mode="rgb_array"
}
"""Extra name -> the top-level modules it provides."""


class MissingExtraError(ImportError):
    """A feature was used whose optional dependencies are not installed."""


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` and its install line when one of its modules is missing."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    missing = [module for module in EXTRAS[extra] if find_spec(module) is None]
    if missing:
        raise MissingExtraError(f"{feature} needs {', '.join(missing)} from the [{extra}] extra: "
                                f"pip install 'infermax-env[{extra}]' (or pip install -e '.[{extra}]' in a checkout)")
