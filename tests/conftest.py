import subprocess
import sys

import numpy as np
import pytest

from baselines import VLLMScheduler

from infermax_env.workload import default_trace_dir


@pytest.fixture
def trace_dir():
    """../shared/traces when present; tests that need it skip cleanly otherwise."""
    directory = default_trace_dir()
    if directory is None:
        pytest.skip("shared/traces not found")
    return directory


def random_feasible_decision(sim, rng: np.random.Generator, evict_prob: float = 0.1):
    """A random feasible Decision that always runs something when anything can run."""
    from infermax_env import Decision

    resident = sim.resident_ids()
    evict = resident[rng.random(len(resident)) < evict_prob] if len(resident) else resident
    ids, tokens = _random_runs(sim, rng, evict)
    if not ids and len(evict):
        evict = resident[:0]
        ids, tokens = _random_runs(sim, rng, evict)
    if not ids and len(resident):
        # Memory is full of partially computed requests: evict one to make room for the others.
        evict = resident[rng.integers(len(resident)):][:1]
        ids, tokens = _random_runs(sim, rng, evict)
    return Decision(ids, tokens, evict)


def _random_runs(sim, rng: np.random.Generator, evict: np.ndarray) -> tuple[list[int], list[int]]:
    cfg = sim.config
    free = cfg.num_blocks - sim.kv_blocks_used + int(sim.config.blocks(sim.kv[evict]).sum())
    evicted = set(evict.tolist())
    candidates = [r for r in list(sim.resident) + list(sim.waiting) if r not in evicted]
    rng.shuffle(candidates)
    budget = cfg.token_budget
    ids, tokens = [], []
    for r in candidates:
        if len(ids) == cfg.max_batch_size or budget == 0:
            break
        t = int(rng.integers(1, min(int(sim.need(r)), budget) + 1))
        extra = int(sim.config.blocks(sim.kv[r] + t) - sim.config.blocks(sim.kv[r]))
        if extra > free:
            continue
        ids.append(r)
        tokens.append(t)
        budget -= t
        free -= extra
    return ids, tokens


def metrics_through_env(env, scheduler_name: str, seed: int) -> tuple[dict, dict]:
    """(metrics of the scheduler acting through ``env``, metrics of the same scheduler on the simulator)."""
    from baselines import make_scheduler
    from baselines.policy import SchedulerPolicy
    from infermax_env import Simulator

    policy = SchedulerPolicy(make_scheduler(scheduler_name), env)
    obs, _ = env.reset(seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        action, _ = policy.predict(obs)
        obs, _, terminated, truncated, info = env.step(action)
    assert terminated, "the episode hit the step cap"
    base = env.unwrapped
    direct = Simulator(base.sim.workload, base.config.cost_model, base.config.engine, oracle=base.config.oracle)
    return info["metrics"], direct.run(make_scheduler(scheduler_name)).summary


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (what a subprocess worker or a new user session sees)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


class RecordingVLLM(VLLMScheduler):
    """vLLM that keeps every ``StepResult`` its ``on_step`` hook receives (reset with each run)."""

    def reset(self, sim):
        super().reset(sim)
        self.results = []

    def on_step(self, result):
        self.results.append(result)
