"""Env speed: steps per second of InferMax-v0 (K = 64) under random valid actions, for each action mode.

One process, ``gymnasium.make`` with its default wrappers. Random valid actions: "select" draws each slot's
choice uniformly among the choices its mask allows, "priority" draws scores uniformly in [-1, 1],
"sequential" draws uniformly among the allowed actions. Episodes that end are reset with the next seed.
The target is 10,000 steps/s for "select" and "priority". Both wall-clock and CPU-time (``process_time``)
rates are printed: on a shared machine the CPU-time rate is what one unloaded core would do.

    python benchmarks/env_speed.py [--steps 20000] [--window 64] [--env InferMax-v0]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import infermax_env  # noqa: F401  (registers the envs)

MODES = ("select", "priority", "sequential")


def random_valid_action(mode: str, mask: np.ndarray, space: gym.Space, rng: np.random.Generator):
    """A uniformly random action among those the mask allows."""
    if mode == "select":
        return np.argmax(rng.random((len(mask) // 3, 3)) * mask.reshape(-1, 3), axis=1)
    if mode == "priority":
        return rng.uniform(-1.0, 1.0, size=space.shape).astype(np.float32)
    return rng.choice(np.flatnonzero(mask))


def measure(env_id: str, mode: str, steps: int, window: int, seed: int = 0) -> tuple[float, float, int, int]:
    """(steps per wall second, steps per CPU second, episodes finished, iterations launched) over ``steps``
    steps."""
    env = gym.make(env_id, action_mode=mode, window=window)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    base = env.unwrapped
    episodes = launched = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        action = random_valid_action(mode, base.action_masks(), env.action_space, rng)
        _, _, terminated, truncated, info = env.step(action)
        launched += info["launched"]
        if terminated or truncated:
            episodes += 1
            env.reset(seed=seed + episodes)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    env.close()
    return steps / elapsed, steps / cpu, episodes, launched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="InferMax-v0")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    source = gym.make(args.env).unwrapped.config.workload_source
    print(f"{args.env}, K = {args.window}, {args.steps} steps per mode; workload: {source}")
    for mode in args.modes:
        rate, cpu_rate, episodes, launched = measure(args.env, mode, args.steps, args.window)
        print(f"{mode:>10}: {rate:,.0f} steps/s wall, {cpu_rate:,.0f} steps/s CPU ({launched} iterations launched, "
              f"{episodes} episodes ended)")


if __name__ == "__main__":
    main()
