"""Every registered heuristic scheduler: feasible, finishes, deterministic, same through the env; hand-checked
vLLM / Sarathi / SRF scenarios; oracle refusal."""

from __future__ import annotations

import numpy as np
import pytest

from baselines import SCHEDULERS, OracleRequiredError, make_scheduler
from baselines.builder import WaitingQueue
from infermax_env import Batch, Decision, EngineConfig, LinearCostModel, Simulator, Workload
from infermax_env.instances import TINY_ENGINE, tiny_setting
from tests.conftest import metrics_through_env

COST = LinearCostModel()
HEURISTICS = sorted(name for name in SCHEDULERS if name != "optimal")
ORACLE = [name for name in HEURISTICS if SCHEDULERS[name].requires_oracle]


class ConstantCost(LinearCostModel):
    """1 second per iteration: hand-checked times are iteration counts."""

    def batch_time(self, batch: Batch) -> float:
        return 1.0


class RecordingScheduler:
    """Wraps a scheduler and keeps every decision it made."""

    def __init__(self, inner):
        self.inner = inner
        self.decisions: list[Decision] = []

    def reset(self, sim):
        self.inner.reset(sim)

    def decide(self, sim):
        decision = self.inner.decide(sim)
        self.decisions.append(decision)
        return decision


def run(name: str, workload: Workload, config: EngineConfig = TINY_ENGINE, cost=COST, **kwargs):
    sim = Simulator(workload, cost, config)
    metrics = sim.run(make_scheduler(name, **kwargs))
    return sim, metrics


def assert_finished(sim: Simulator) -> None:
    assert sim.done and sim.finished.all()
    np.testing.assert_array_equal(sim.generated, sim.output_len)
    np.testing.assert_array_equal(sim.kv_at_finish, sim.prompt_len + sim.output_len - 1)
    assert sim.kv_blocks_used == 0 and not sim.waiting and not sim.resident


# ---- every scheduler ------------------------------------------------------------------------------------
NEEDS_EVICTION = Workload.from_lists([10, 10, 10, 10], [12, 12, 12, 12])  # every prompt fits, no final KV pair does
ONE_HUGE = Workload.from_lists([3, 30, 4, 2, 5], [4, 10, 3, 6, 2], [0.0, 0.0, 0.0, 0.5, 1.0])  # 39 of M = 48


@pytest.mark.parametrize("name", HEURISTICS)
def test_scheduler_finishes_tiny_instances_with_feasible_decisions(name):
    """Every decision goes through ``Simulator.step``, which raises on any infeasible one."""
    setting = tiny_setting()
    for seed in range(6):
        sim, metrics = run(name, setting.sample(seed))
        assert_finished(sim)
        assert metrics["total_gpu_time"] > 0


@pytest.mark.parametrize("name", HEURISTICS)
def test_scheduler_finishes_a_workload_that_needs_eviction(name):
    """Four requests that each need 21 KV tokens at the end; M = 48 holds two, but all four prompts fit."""
    sim, metrics = run(name, NEEDS_EVICTION)
    assert_finished(sim)
    if name.endswith("_noe"):
        assert metrics["evictions"] == 0


@pytest.mark.parametrize("name", HEURISTICS)
def test_scheduler_finishes_with_a_request_larger_than_half_the_memory(name):
    sim, _ = run(name, ONE_HUGE)
    assert_finished(sim)


@pytest.mark.parametrize("name", HEURISTICS)
def test_scheduler_finishes_with_blocks_that_do_not_divide_the_capacity(name):
    """M = 50 in blocks of 4 holds 48 tokens: reservations capped at M must still fit an empty cache."""
    config = EngineConfig(kv_capacity=50, token_budget=16, max_batch_size=4, block_size=4)
    sim, _ = run(name, Workload.from_lists([5, 30, 7], [3, 19, 2], [0.0, 0.0, 1.0]), config)
    assert_finished(sim)


@pytest.mark.parametrize("name", HEURISTICS)
def test_scheduler_is_deterministic(name):
    workload = tiny_setting().sample(11)
    first = RecordingScheduler(make_scheduler(name))
    Simulator(workload, COST, TINY_ENGINE).run(first)
    scheduler = make_scheduler(name)
    again = [RecordingScheduler(scheduler) for _ in range(2)]  # one instance, reused: reset must reseed
    for recorder in again:
        Simulator(workload, COST, TINY_ENGINE).run(recorder)
        assert recorder.decisions == first.decisions


def test_random_scheduler_depends_on_its_seed():
    workload = tiny_setting((10, 10)).sample(3)
    runs = []
    for seed in (0, 0, 1):
        recorder = RecordingScheduler(make_scheduler("random", seed=seed))
        Simulator(workload, COST, TINY_ENGINE).run(recorder)
        runs.append(recorder.decisions)
    assert runs[0] == runs[1] and runs[0] != runs[2]


@pytest.mark.parametrize("name", ORACLE)
def test_oracle_schedulers_refuse_hidden_output_lengths(name):
    sim = Simulator(tiny_setting().sample(0), COST, TINY_ENGINE, oracle=False)
    with pytest.raises(OracleRequiredError, match="oracle"):
        sim.run(make_scheduler(name))


@pytest.mark.parametrize("name", sorted(set(HEURISTICS) - set(ORACLE)))
def test_non_oracle_schedulers_run_with_hidden_output_lengths(name):
    sim = Simulator(tiny_setting().sample(0), COST, TINY_ENGINE, oracle=False)
    sim.run(make_scheduler(name))
    assert_finished(sim)


def test_registry_names_docstrings_and_errors():
    for name in HEURISTICS:
        cls = SCHEDULERS[name]
        assert cls.name == name and len((cls.__doc__ or "").strip()) > 80, name
        assert isinstance(cls.requires_oracle, bool)
    assert {"vllm", "sarathi", "orca", "static", "sort_arrival", "sort_prompt", "sort_output", "srpt", "vllm_noe",
            "sarathi_cap", "infermax", "sagesched", "mlfq", "random"} <= set(SCHEDULERS)
    with pytest.raises(ValueError, match="unknown scheduler 'fifo'"):
        make_scheduler("fifo")
    with pytest.raises(ValueError, match="does not accept"):
        make_scheduler("vllm", chunk_size=8)
    with pytest.raises(ValueError, match="eviction must be one of"):
        make_scheduler("sort_prompt", eviction="oldest")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        make_scheduler("sarathi", chunk_size=0)


# ---- the same metrics through the env -------------------------------------------------------------------
def tiny_metrics_through_env(name: str, seed: int, **env_kwargs) -> tuple[dict, dict]:
    """:func:`metrics_through_env` on InferMax-Tiny-v0, with output lengths shown to oracle schedulers."""
    import gymnasium as gym

    env = gym.make("InferMax-Tiny-v0", oracle=SCHEDULERS[name].requires_oracle, **env_kwargs)
    return metrics_through_env(env, name, seed)


@pytest.mark.parametrize("name", sorted(set(HEURISTICS) - {"random"}))
def test_scheduler_through_the_env_matches_the_simulator(name):
    pytest.importorskip("infermax_env.envs")
    for seed in range(3):
        through_env, direct = tiny_metrics_through_env(name, seed, action_mode="sequential")
        assert through_env == direct, (name, seed)


def test_random_chunk_sizes_are_not_expressible_in_the_env():
    """The env sizes each chunk itself (what is left of the budget and memory), so the random scheduler's cut
    chunks cannot be written as actions: the adapter says so instead of diverging."""
    pytest.importorskip("infermax_env.envs")
    from infermax_env.envs import NotExpressibleError

    for mode in ("sequential", "select"):
        with pytest.raises(NotExpressibleError, match="cannot express"):
            tiny_metrics_through_env("random", 0, action_mode=mode)


# ---- hand-checked scenarios -----------------------------------------------------------------------------
def decisions_of(name: str, workload: Workload, config: EngineConfig, **kwargs) -> list[dict]:
    recorder = RecordingScheduler(make_scheduler(name, **kwargs))
    Simulator(workload, ConstantCost(), config).run(recorder)
    return [d.as_dict() for d in recorder.decisions]


def test_vllm_hand_checked():
    """M = 12, C = 8. Prompts 4, 4, 6 with outputs 3, 3, 2, all at t = 0.

    it 1: prefill-only, whole prompts in arrival order: r0 (4) + r1 (4) fill C = 8; r2 waits.
    it 2: r2's 6-token prefill fits C but memory holds 8 + 6 = 14 > 12: blocked, so the residents decode
          (KV 10).
    it 3: both decode (KV 12 = M): r0 and r1 emit token 3 and finish, freeing everything.
    it 4: r2 prefills (6), it 5: r2 decodes and finishes.
    """
    workload = Workload.from_lists([4, 4, 6], [3, 3, 2])
    config = EngineConfig(kv_capacity=12, token_budget=8)
    assert decisions_of("vllm", workload, config) == [
        {"run_ids": [0, 1], "run_tokens": [4, 4], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 1], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 1], "evict_ids": []},
        {"run_ids": [2], "run_tokens": [6], "evict_ids": []},
        {"run_ids": [2], "run_tokens": [1], "evict_ids": []},
    ]


def test_vllm_evicts_the_newest_and_recomputes_it():
    """M = 10, C = 16. Prompts 4, 4 with outputs 4, 4: both prefill (KV 8), decode to KV 10 = M; the next decodes
    need 2 more tokens, so r1 (newest) is evicted; r0 finishes; r1 recomputes prompt + 2 generated tokens."""
    workload = Workload.from_lists([4, 4], [4, 4])
    config = EngineConfig(kv_capacity=10, token_budget=16)
    assert decisions_of("vllm", workload, config) == [
        {"run_ids": [0, 1], "run_tokens": [4, 4], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 1], "evict_ids": []},
        {"run_ids": [0], "run_tokens": [1], "evict_ids": [1]},
        {"run_ids": [0], "run_tokens": [1], "evict_ids": []},
        {"run_ids": [1], "run_tokens": [6], "evict_ids": []},
        {"run_ids": [1], "run_tokens": [1], "evict_ids": []},
    ]


def test_sarathi_hand_checked():
    """M = 100, C = 6. r0: prompt 5, output 3 at t = 0; r1: prompt 7, output 2 at t = 0.

    it 1: no decodes; r0 prefills 5 and r1 gets the last budget token (a 1-token chunk).
    it 2: r0 decodes (1), then the partial prefill r1 continues with 5 of its 6 remaining tokens.
    it 3: r0 decodes and finishes; r1's last prompt token (1) emits its first token.
    it 4: r1 decodes and finishes.
    """
    workload = Workload.from_lists([5, 7], [3, 2])
    config = EngineConfig(kv_capacity=100, token_budget=6)
    assert decisions_of("sarathi", workload, config) == [
        {"run_ids": [0, 1], "run_tokens": [5, 1], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 5], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 1], "evict_ids": []},
        {"run_ids": [1], "run_tokens": [1], "evict_ids": []},
    ]


def test_sarathi_chunk_size_caps_the_iteration():
    workload = Workload.from_lists([5, 7], [3, 2])
    config = EngineConfig(kv_capacity=100, token_budget=6)
    first = decisions_of("sarathi", workload, config, chunk_size=3)[0]
    assert first == {"run_ids": [0], "run_tokens": [3], "evict_ids": []}


def test_srf_evicts_the_request_with_the_fewest_computed_tokens():
    """M = 16, C = 16. r0: prompt 2, output 6; r1: prompt 8, output 6; both at t = 0. Global FCFS order
    (``sort_arrival``) with SRF eviction versus newest eviction.

    it 1: both prefill (KV 2 + 8). its 2-4: both decode: KV 5 + 11 = 16 = M. it 5: both need a token, memory is
    full: SRF evicts r0 (5 computed tokens, fewer than r1's 11) although it is the older one; newest eviction
    evicts r1.
    """
    workload = Workload.from_lists([2, 8], [6, 6], [0.0, 0.0])
    config = EngineConfig(kv_capacity=16, token_budget=16)
    srf = decisions_of("sort_arrival", workload, config, eviction="srf")
    newest = decisions_of("sort_arrival", workload, config, eviction="newest")
    first_eviction = lambda decisions: next(d for d in decisions if d["evict_ids"])  # noqa: E731
    assert srf[:4] == newest[:4] == [
        {"run_ids": [0, 1], "run_tokens": [2, 8], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 1], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 1], "evict_ids": []},
        {"run_ids": [0, 1], "run_tokens": [1, 1], "evict_ids": []},
    ]
    assert first_eviction(srf) == {"run_ids": [1], "run_tokens": [1], "evict_ids": [0]}
    assert first_eviction(newest) == {"run_ids": [0], "run_tokens": [1], "evict_ids": [1]}


def test_infermax_serves_most_computed_first_and_evicts_fewest_computed():
    sim = Simulator(Workload.from_lists([2, 8], [6, 6]), ConstantCost(), EngineConfig(kv_capacity=16, token_budget=16))
    recorder = RecordingScheduler(make_scheduler("infermax"))
    sim.run(recorder)
    evictions = [d for d in recorder.decisions if len(d.evict_ids)]
    assert evictions and evictions[0].evict_ids.tolist() == [0]  # r0 holds 5 tokens, r1 holds 11
    assert_finished(sim)


def test_no_eviction_variant_reserves_the_final_kv():
    """vllm_noe admits r1 only once r0's final KV (I + O - 1) leaves room for r1's: here never together."""
    workload = Workload.from_lists([4, 4], [5, 5])
    config = EngineConfig(kv_capacity=12, token_budget=16)
    decisions = decisions_of("vllm_noe", workload, config)
    assert decisions[0] == {"run_ids": [0], "run_tokens": [4], "evict_ids": []}
    assert all(not d["evict_ids"] for d in decisions)
    assert all(d["run_ids"] == [0] for d in decisions[:5]) and decisions[5]["run_ids"] == [1]


def test_static_batching_waits_for_the_whole_batch():
    """r1 arrives while r0's batch runs: it joins only after r0 finishes."""
    workload = Workload.from_lists([2, 2], [4, 1], [0.0, 0.5])
    decisions = decisions_of("static", workload, EngineConfig(kv_capacity=100, token_budget=16), max_tokens=8)
    assert [d["run_ids"] for d in decisions] == [[0], [0], [0], [0], [1]]


def test_waiting_queue_keeps_key_then_id_order():
    queue = WaitingQueue(10)
    queue.insert(np.array([5, 2]), np.array([1.0, 1.0]))
    queue.insert(np.array([7]), np.array([0.5]))
    queue.insert(np.array([3, 9, 1]), np.array([1.0, 0.5, 2.0]))
    assert queue.ids.tolist() == [7, 9, 2, 3, 5, 1]
    queue.remove(np.array([7, 9]))
    queue.remove(np.array([3]))
    assert queue.ids.tolist() == [2, 5, 1] and queue.member.sum() == 3


@pytest.mark.slow
def test_vllm_keeps_the_reference_trace_replay(trace_dir):
    """The whole Azure conv trace in the INFERMAX setting gives the reference vLLM numbers."""
    from infermax_env import load_azure_trace
    from infermax_env.instances import INFERMAX_ENGINE

    metrics = Simulator(load_azure_trace("conv", trace_dir), COST, INFERMAX_ENGINE).run(make_scheduler("vllm"))
    assert metrics["iterations"] == 62_601 and metrics["evictions"] == 3615
    assert metrics["total_gpu_time"] == pytest.approx(7102.42, abs=0.01)


@pytest.mark.parametrize("name", ["sarathi", "infermax", "sagesched", "mlfq"])
def test_scheduler_resyncs_when_the_simulator_jumps(name):
    """Stepping the simulator behind the scheduler's back (several steps, or a clone) makes it rebuild its
    waiting queue from the simulator instead of trusting its incremental bookkeeping."""
    workload = tiny_setting((12, 12)).sample(5)
    followed = Simulator(workload, COST, TINY_ENGINE)
    scheduler = make_scheduler(name)
    scheduler.reset(followed)
    for _ in range(3):
        followed.step(scheduler.decide(followed))
    clone = followed.clone()
    expected = scheduler.decide(followed)
    assert scheduler.decide(clone) == expected
    followed.step(expected)
    followed.step(make_scheduler("vllm").decide(followed))  # a step the scheduler did not see
    decision = scheduler.decide(followed)
    assert set(scheduler._queue.ids.tolist()) == set(followed.waiting)
    followed.step(decision)
