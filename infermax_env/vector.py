"""A native vector env: N InferMax envs stepped in one process, the entry point of
``gymnasium.make_vec(id, n, vectorization_mode="vector_entry_point")``.

Same semantics as ``gymnasium.make_vec(id, n, vectorization_mode="sync")`` with the same seeds (next-step
autoreset, ``reset(seed=s)`` seeds the sub-envs ``s, s + 1, ...``, the spec's step limit truncates), so the two
produce identical observations, rewards and terminations. What it saves per step: the sub-envs are the raw
:class:`InferMaxEnv` (no checker, order-enforcing or time-limit wrappers), each observation is written into one
preallocated batch array per key instead of being concatenated, and ``info`` has the fixed scalar schema of
:data:`infermax_env.wrappers.SCALAR_INFO_KEYS`, one (N,) float array per key, instead of Gymnasium's
aggregation of the nested, ragged per-step info (``info_details=True`` adds the full infos as a tuple under
``"details"``). ``flat=True`` gives :class:`~infermax_env.wrappers.FlatObservation`'s observations (the same as
sync vectorisation with ``wrappers=[FlatObservation]``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .envs.scheduling_env import InferMaxEnv
from .wrappers import SCALAR_INFO_KEYS, FlatObservation, scalar_values


class InferMaxVectorEnv(VectorEnv):
    """``num_envs`` InferMax envs of one preset and settings, stepped one after the other in this process.

    :param num_envs: N, the number of sub-envs.
    :param preset: ``"default"`` (InferMax-v0) or ``"tiny"`` (InferMax-Tiny-v0).
    :param max_episode_steps: steps after which an episode is truncated (``None``: never).
    :param info_details: also return each sub-env's full info, as a tuple under ``info["details"]``.
    :param copy: return fresh observation arrays each step (else views of the internal buffers, overwritten by
        the next call).
    :param flat: observations in :class:`~infermax_env.wrappers.FlatObservation`'s format, with its
        ``obs_key``, ``mask_key`` and ``mask_dtype`` (``mask_key=None``: one (N, size) float32 array).
    :param kwargs: the env keywords of :class:`InferMaxEnv` (``window``, ``action_mode``, ``objective``, ...).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int, preset: str = "default", max_episode_steps: int | None = None,
                 info_details: bool = False, copy: bool = True, flat: bool = False, obs_key: str = "observations",
                 mask_key: str | None = "action_mask", mask_dtype: str = "float32", **kwargs: Any):
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if max_episode_steps is not None and not (isinstance(max_episode_steps, (int, np.integer))
                                                  and max_episode_steps >= 1):
            raise ValueError(f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
        if kwargs.get("render_mode") is not None:
            raise ValueError("InferMaxVectorEnv does not render; use gymnasium.make_vec(..., vectorization_mode="
                             "'sync') with render_mode, or render one InferMaxEnv")
        kwargs.pop("render_mode", None)
        self.num_envs = int(num_envs)
        self.envs = [InferMaxEnv(preset, **kwargs) for _ in range(self.num_envs)]
        first = self.envs[0]
        self._flat = FlatObservation(first, obs_key, mask_key, mask_dtype) if flat else None
        self.single_observation_space = self._flat.observation_space if flat else first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.max_episode_steps = max_episode_steps
        self.info_details = info_details
        self.copy = copy
        self.render_mode = None
        spaces = getattr(self.single_observation_space, "spaces", {None: self.single_observation_space})
        self._observations = {key: np.zeros((self.num_envs, *space.shape), dtype=space.dtype)
                              for key, space in spaces.items()}
        # Per sub-env state in Python lists (item access on small numpy arrays costs more than the copy to one).
        self._scalars = [(0.0,) * len(SCALAR_INFO_KEYS)] * self.num_envs
        self._rewards = [0.0] * self.num_envs
        self._terminations = [False] * self.num_envs
        self._truncations = [False] * self.num_envs
        self._autoreset = [False] * self.num_envs
        self._elapsed = [0] * self.num_envs
        self._num_requests = [0] * self.num_envs

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-env (or those in ``options["reset_mask"]``, a (N,) bool array); ``seed`` is ``None``,
        an int ``s`` (sub-env i gets ``s + i``) or one seed per sub-env."""
        super().reset(seed=int(seed) if isinstance(seed, (int, np.integer)) else None)
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed must be None, an int or {self.num_envs} seeds, got {len(seeds)} seeds")
        options = dict(options or {})
        reset_mask = options.pop("reset_mask", None)
        if reset_mask is None:
            reset_mask = np.ones(self.num_envs, dtype=bool)
        elif not (isinstance(reset_mask, np.ndarray) and reset_mask.dtype == bool
                  and reset_mask.shape == (self.num_envs,) and reset_mask.any()):
            raise ValueError(f"options['reset_mask'] must be a ({self.num_envs},) bool array with a True entry, got "
                             f"{reset_mask!r}")
        details: list[dict | None] = [None] * self.num_envs
        for i in np.flatnonzero(reset_mask).tolist():
            details[i] = self._reset_one(i, seeds[i], options or None)
        return self._batch(), self._info(details)

    def step(self, actions):
        """Step every sub-env with its row of ``actions``; a sub-env whose episode ended on the previous step is
        reset instead (next-step autoreset: reward 0, not terminated, its action ignored)."""
        details: list[dict | None] = [None] * self.num_envs
        limit = self.max_episode_steps
        for i, env in enumerate(self.envs):
            if self._autoreset[i]:
                details[i] = self._reset_one(i, None, None)
                continue
            observation, reward, terminated, truncated, info = env.step(actions[i])
            self._elapsed[i] += 1
            self._write(i, observation, info)
            details[i] = info
            truncated = truncated or (limit is not None and self._elapsed[i] >= limit)
            self._rewards[i], self._terminations[i], self._truncations[i] = reward, terminated, truncated
            self._autoreset[i] = terminated or truncated
        return (self._batch(), np.array(self._rewards, dtype=np.float64), np.array(self._terminations, dtype=bool),
                np.array(self._truncations, dtype=bool), self._info(details))

    def action_masks(self) -> np.ndarray:
        """(N, mask size) bool: each sub-env's ``action_masks()``."""
        return np.stack([env.action_masks() for env in self.envs])

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Each sub-env's attribute ``name``, called with the arguments when it is callable."""
        results = []
        for env in self.envs:
            attribute = getattr(env, name)
            results.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return tuple(results)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Each sub-env's attribute ``name``."""
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute ``name`` of every sub-env, to ``values[i]`` when a list or tuple of N values is given,
        else to ``values``."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs {self.num_envs} values, got {len(values)}")
        for env, value in zip(self.envs, values):
            setattr(env, name, value)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    # ---- internals -------------------------------------------------------------------------------
    def _reset_one(self, i: int, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        observation, info = self.envs[i].reset(seed=seed, options=options)
        self._elapsed[i] = 0
        self._num_requests[i] = info["num_requests"]
        self._rewards[i], self._terminations[i], self._truncations[i], self._autoreset[i] = 0.0, False, False, False
        self._write(i, observation, info)
        return info

    def _write(self, i: int, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        if self._flat is not None:
            observation = self._flat.observation(observation)
            if not isinstance(observation, dict):
                observation = {None: observation}
        for key, batch in self._observations.items():
            batch[i] = observation[key]
        self._scalars[i] = scalar_values(info, self._num_requests[i], self.envs[i].reference_objective)

    def _batch(self) -> dict[str, np.ndarray] | np.ndarray:
        batches = {key: batch.copy() if self.copy else batch for key, batch in self._observations.items()}
        return batches[None] if None in batches else batches

    def _info(self, details: list[dict | None]) -> dict[str, Any]:
        info: dict[str, Any] = dict(zip(SCALAR_INFO_KEYS, np.array(self._scalars, dtype=np.float64).T.copy()))
        if self.info_details:
            info["details"] = tuple(details)
        return info

