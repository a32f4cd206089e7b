"""Env speed: steps per second of InferMax-v0 (K = 64) under random valid actions, for each action mode.

One process, ``gymnasium.make`` with its default wrappers. Random valid actions: "select" draws each slot's
choice uniformly among the choices its mask allows, "priority" draws scores uniformly in [-1, 1],
"sequential" draws uniformly among the allowed actions. Episodes that end are reset with the next seed.
The target is 10,000 steps/s for "select" and "priority".

Three rates are printed: the env's own (steps per second of time spent inside ``step`` and ``reset``, what an RL
loop pays for the env whatever its policy costs), the whole loop's wall-clock rate (env plus drawing the random
action) and the loop's CPU-time rate (``process_time``; on a shared machine, what one unloaded core would do).
The clock starts after ``--warmup`` steps: a process's first calls load the compiled numba kernels from their
cache (about a second, once per process), which is not the steady-state speed.

``--vector N`` compares, in the select mode, ``gymnasium.make_vec(env, N)`` with Gymnasium's sync
vectorisation against the native vector env (``vectorization_mode="vector_entry_point"``): microseconds per
env step (time inside the vector ``step`` over N sub-env steps), both on the same seeds and random valid actions,
alternating in blocks of 50 vector steps so both see the same load; wall-clock and CPU time.

    python benchmarks/env_speed.py [--steps 20000] [--warmup 500] [--window 64] [--env InferMax-v0] [--vector 8]
"""

from __future__ import annotations

import argparse
import time
import timeit

import gymnasium as gym
import numpy as np

import infermax_env  # noqa: F401  (registers the envs)

MODES = ("select", "priority", "sequential")


def random_valid_action(mode: str, mask: np.ndarray, space: gym.Space, rng: np.random.Generator):
    """A uniformly random action among those the mask allows."""
    if mode == "select":  # each slot allows a prefix of (leave, run, evict): pick uniformly within it
        return (rng.random(len(mask) // 3) * mask.reshape(-1, 3).sum(axis=1)).astype(np.int64)
    if mode == "priority":
        return rng.uniform(-1.0, 1.0, size=space.shape).astype(np.float32)
    return rng.choice(np.flatnonzero(mask))


def measure(env_id: str, mode: str, steps: int, window: int, warmup: int = 500,
            seed: int = 0) -> tuple[float, float, float, int, int]:
    """(env steps per second inside step/reset, loop steps per wall second, loop steps per CPU second, episodes
    finished, iterations launched) over ``steps`` steps after ``warmup`` untimed ones."""
    env = gym.make(env_id, action_mode=mode, window=window)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    base = env.unwrapped
    episodes = launched = resets = 0
    in_env = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            episodes = launched = 0
            in_env = 0.0
            start, cpu_start = time.perf_counter(), time.process_time()
        action = random_valid_action(mode, base.action_masks(), env.action_space, rng)
        entered = time.perf_counter()
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            episodes += 1
            resets += 1
            env.reset(seed=seed + resets)
        in_env += time.perf_counter() - entered
        launched += info["launched"]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    env.close()
    return steps / in_env, steps / elapsed, steps / cpu, episodes, launched


def compare_vector(env_id: str, num_envs: int, steps: int, window: int, warmup: int = 50, block: int = 50,
                   seed: int = 0) -> dict[str, tuple[float, float]]:
    """(wall, CPU) microseconds per env step inside ``step`` for sync ``make_vec`` and the native vector env
    (select mode, ``num_envs`` sub-envs each), over ``steps`` vector steps each after ``warmup`` untimed ones.
    The two alternate in blocks of ``block`` vector steps, so both see the same machine load."""
    modes = ("sync", "vector_entry_point")
    envs = {mode: gym.make_vec(env_id, num_envs, vectorization_mode=mode, window=window) for mode in modes}
    rngs = {mode: np.random.default_rng(seed) for mode in modes}
    observations = {mode: envs[mode].reset(seed=seed)[0] for mode in modes}
    spent = {mode: [0.0, 0.0] for mode in modes}
    for start in range(0, warmup + steps, block):
        for mode in modes:
            for step in range(start, min(start + block, warmup + steps)):
                allowed = observations[mode]["action_mask"].reshape(num_envs, -1, 3).sum(axis=2)
                actions = (rngs[mode].random(allowed.shape) * allowed).astype(np.int64)
                entered, cpu_entered = time.perf_counter(), time.process_time()
                observations[mode], *_ = envs[mode].step(actions)
                if step >= warmup:
                    spent[mode][0] += time.perf_counter() - entered
                    spent[mode][1] += time.process_time() - cpu_entered
    for env in envs.values():
        env.close()
    return {mode: (wall / (steps * num_envs) * 1e6, cpu / (steps * num_envs) * 1e6)
            for mode, (wall, cpu) in spent.items()}


def host_reference_us() -> float:
    """Microseconds per ``sum(range(1000))``, best of 5 runs: a yardstick to compare hosts' single-core speed."""
    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="InferMax-v0")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps first (kernel cache loading)")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--vector", type=int, default=0, metavar="N",
                        help="also compare sync make_vec with the native vector env over N sub-envs")
    args = parser.parse_args()
    source = gym.make(args.env).unwrapped.config.workload_source
    print(f"{args.env}, K = {args.window}, {args.steps} steps per mode; workload: {source}")
    print(f"host reference: sum(range(1000)) takes {host_reference_us():.1f} us (best of 5; smaller is a faster core)")
    for mode in args.modes:
        env_rate, rate, cpu_rate, episodes, launched = measure(args.env, mode, args.steps, args.window, args.warmup)
        print(f"{mode:>10}: env {env_rate:,.0f} steps/s | loop {rate:,.0f} steps/s wall, {cpu_rate:,.0f} steps/s CPU "
              f"({launched} iterations launched, {episodes} episodes ended)")
    if args.vector:
        vector_steps = max(args.steps // args.vector, 1)
        rates = compare_vector(args.env, args.vector, vector_steps, args.window)
        (sync, sync_cpu), (native, native_cpu) = rates["sync"], rates["vector_entry_point"]
        print(f"vector, N = {args.vector}, select mode, {vector_steps} vector steps, us per env step (wall / CPU): "
              f"sync make_vec {sync:.1f} / {sync_cpu:.1f} | vector_entry_point {native:.1f} / {native_cpu:.1f} "
              f"({sync / native:.2f}x wall, {sync_cpu / native_cpu:.2f}x CPU)")


if __name__ == "__main__":
    main()
