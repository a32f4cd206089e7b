import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines import VLLMScheduler
from infermax_env import (Batch, Decision, EngineConfig, InfeasibleDecisionError, LinearCostModel, Simulator,
                          Workload, WorkloadError, compute_metrics)
from tests.conftest import RecordingVLLM, random_feasible_decision

COST = LinearCostModel()


class ConstantCost(LinearCostModel):
    """1 second per iteration: makes hand-checked times trivial."""

    def batch_time(self, batch: Batch) -> float:
        return 1.0


def run_random(workload, config, seed, evict_prob=0.1):
    rng = np.random.default_rng(seed)
    sim = Simulator(workload, COST, config)
    peak_ok, clock_ok, budget_ok = True, True, True
    steps = 0
    while not sim.done:
        before = sim.clock
        result = sim.step(random_feasible_decision(sim, rng, evict_prob))
        steps += 1
        assert steps < 20_000, "random run did not finish"
        clock_ok &= sim.clock >= before
        budget_ok &= int(result.batch.num_tokens) <= config.token_budget
        peak_ok &= sim.log.kv_blocks[-1] <= config.num_blocks if sim.log.kv_blocks else True
    return sim, peak_ok, clock_ok, budget_ok


workloads = st.integers(1, 8).flatmap(lambda n: st.tuples(
    st.lists(st.integers(1, 12), min_size=n, max_size=n),
    st.lists(st.integers(1, 8), min_size=n, max_size=n),
    st.lists(st.floats(0, 3, allow_nan=False), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(workloads, st.integers(0, 10**6), st.sampled_from([1, 2, 4]))
def test_invariants_under_random_valid_decisions(spec, seed, block_size):
    prompts, outputs, arrivals = spec
    workload = Workload.from_lists(prompts, outputs, sorted(arrivals))
    config = EngineConfig(kv_capacity=40, token_budget=10, max_batch_size=3, block_size=block_size)
    sim, peak_ok, clock_ok, budget_ok = run_random(workload, config, seed)
    assert peak_ok and clock_ok and budget_ok
    assert sim.finished.all() and not sim.rejected.any()
    np.testing.assert_array_equal(sim.generated, sim.output_len)
    np.testing.assert_array_equal(sim.kv_at_finish, sim.prompt_len + sim.output_len - 1)
    assert sim.kv_blocks_used == 0 and not sim.resident and not sim.waiting
    metrics = compute_metrics(sim)
    # Metrics agree with the batch log and with the per-step latency integral.
    assert math.isclose(metrics["total_gpu_time"], sum(sim.log.batch_time), rel_tol=1e-12)
    assert math.isclose(metrics["sum_ttlt"], sim.total_latency_area, rel_tol=1e-9, abs_tol=1e-9)
    assert metrics["iterations"] == len(sim.log.decisions)
    assert np.all(sim.first_token_time <= sim.finish_time)
    assert np.all(sim.first_token_time >= sim.arrival)
    # Every token computed since the last eviction is in the log: I + O - 1 + recomputed in total.
    computed = np.zeros(len(workload), dtype=np.int64)
    for decision in sim.log.decisions:
        np.add.at(computed, decision.run_ids, decision.run_tokens)
    np.testing.assert_array_equal(computed, sim.prompt_len + sim.output_len - 1 + sim.recomputed_tokens)


def test_hand_checked_prefill_decode_and_eviction():
    # Two requests: A (I=3, O=2), B (I=2, O=3); M = 7 tokens, C = 5, 1 s per iteration.
    w = Workload.from_lists([3, 2], [2, 3])
    sim = Simulator(w, ConstantCost(), EngineConfig(kv_capacity=7, token_budget=5))
    r = sim.step(Decision([0, 1], [3, 1]))           # A prefills fully (emits token 1), B chunk of 1
    assert sim.generated.tolist() == [1, 0] and sim.kv.tolist() == [3, 1]
    assert r.batch.num_prefills == 2 and r.batch.prefill_samples == 1 and r.latency_area == 2.0
    assert sim.need(0) == 1 and sim.is_decoding(0) and not sim.is_decoding(1)
    sim.step(Decision([1], [1]))                       # B finishes its prefill: emits token 1
    assert sim.generated.tolist() == [1, 1] and sim.kv.tolist() == [3, 2]
    sim.step(Decision([1], [1], evict_ids=[0]))        # evict A (3 KV tokens lost), B decodes
    assert sim.kv.tolist() == [0, 3] and sim.num_preemptions.tolist() == [1, 0]
    assert sim.recomputed_tokens.tolist() == [3, 0] and 0 in sim.waiting and 0 in sim.evicted_waiting
    assert sim.need(0) == 4                            # must prefill I + g = 3 + 1 tokens
    with pytest.raises(InfeasibleDecisionError, match="KV capacity exceeded.*over by 1 tokens"):
        sim.step(Decision([0, 1], [4, 1]))             # 4 + 4 = 8 > 7
    r = sim.step(Decision([0], [4]))                   # A recomputes I + g and emits token 2: done
    assert sim.finished.tolist() == [True, False] and sim.kv_at_finish[0] == 4 == 3 + 2 - 1
    assert sim.finish_time[0] == 4.0 and sim.first_token_time[0] == 1.0 and sim.kv_blocks_used == 3
    r = sim.step(Decision([1], [1]))
    assert sim.done and sim.finish_time[1] == 5.0 and sim.kv_at_finish[1] == 2 + 3 - 1
    metrics = compute_metrics(sim)
    assert metrics["sum_ttlt"] == 9.0 == sim.total_latency_area
    assert metrics["evictions"] == 1 and metrics["recomputed_tokens"] == 3
    assert metrics["mean_ttft"] == (1.0 + 2.0) / 2
    assert math.isclose(metrics["mean_tpot"], ((4 - 1) / 1 + (5 - 2) / 2) / 2)


def test_clock_jumps_to_arrivals_and_idle_decision_waits():
    w = Workload.from_lists([2, 2], [1, 1], arrival=[5.0, 9.0])
    sim = Simulator(w, ConstantCost(), EngineConfig(kv_capacity=10, token_budget=10))
    assert sim.clock == 5.0 and list(sim.waiting) == [0]
    with pytest.raises(InfeasibleDecisionError, match="has not arrived"):
        sim.step(Decision([1], [2]))
    sim.step(Decision([0], [2]))                        # finishes at 6; clock jumps to 9
    assert sim.clock == 9.0 and sim.total_idle_time == 3.0 and list(sim.waiting) == [1]  # run starts at 5
    w = Workload.from_lists([2, 2], [1, 1], arrival=[0.0, 4.0])
    sim = Simulator(w, ConstantCost(), EngineConfig(kv_capacity=10, token_budget=10))
    r = sim.step(Decision())                           # idle with request 0 waiting: not free
    assert sim.clock == 4.0 and r.idle_time == 4.0 and r.latency_area == 4.0
    sim.step(Decision([0, 1], [2, 2]))
    assert sim.done
    with pytest.raises(InfeasibleDecisionError, match="simulation is done"):
        sim.step(Decision())


def test_empty_decision_without_future_arrivals_is_an_error_not_a_hang():
    sim = Simulator(Workload.from_lists([2], [2]), COST, EngineConfig(kv_capacity=10, token_budget=10))
    with pytest.raises(InfeasibleDecisionError, match="never progress"):
        sim.step(Decision())


@pytest.mark.parametrize("decision, message", [
    (Decision([0, 1], [5, 5]), "token budget exceeded: 10 tokens but C = 8; over by 2"),
    (Decision([0, 1, 2], [1, 1, 1]), "batch size exceeded: 3 requests run but max_batch_size = 2"),
    (Decision([7], [1]), "cannot run request 7: it does not exist"),
    (Decision([-1], [1]), "cannot run request -1: it does not exist"),
    (Decision([0, 0], [1, 1]), "run_ids has duplicates"),
    (Decision([0], [0]), "must compute between 1 and 5"),
    (Decision([0], [6]), "asked to compute 6 tokens; it must compute between 1 and 5"),
    (Decision([], [], [0]), "cannot evict request 0: it holds no KV"),
])
def test_infeasible_decisions_name_the_constraint(decision, message):
    w = Workload.from_lists([5, 5, 5], [2, 2, 2])
    sim = Simulator(w, COST, EngineConfig(kv_capacity=12, token_budget=8, max_batch_size=2))
    with pytest.raises(InfeasibleDecisionError, match=message.replace("(", r"\(")):
        sim.step(decision)
    assert sim.num_iterations == 0 and sim.kv.sum() == 0  # nothing changed


def test_evict_and_run_same_request_and_finished_request_are_rejected():
    w = Workload.from_lists([2, 2], [1, 3])
    sim = Simulator(w, COST, EngineConfig(kv_capacity=12, token_budget=8))
    sim.step(Decision([0, 1], [2, 2]))
    with pytest.raises(InfeasibleDecisionError, match="finished"):
        sim.step(Decision([0], [1]))
    with pytest.raises(InfeasibleDecisionError, match="both evicted and run"):
        sim.step(Decision([1], [1], [1]))


def test_block_rounding_counts_whole_blocks():
    w = Workload.from_lists([3, 3], [2, 2])
    sim = Simulator(w, COST, EngineConfig(kv_capacity=8, token_budget=8, block_size=4))
    sim.step(Decision([0, 1], [3, 3]))                  # 2 blocks used of 2
    assert sim.kv_blocks_used == 2
    sim.step(Decision([0, 1], [1, 1]))                  # 4 tokens each still fit in one block
    assert sim.done and sim.log.kv_blocks == [2, 2]
    sim = Simulator(Workload.from_lists([5], [1]), COST, EngineConfig(kv_capacity=8, token_budget=8, block_size=4))
    assert sim.step(Decision([0], [5])) and sim.log.kv_blocks == [2]


def test_oversized_request_is_an_error_or_rejected_never_lost():
    w = Workload.from_lists([3, 30], [2, 5])
    with pytest.raises(WorkloadError, match=r"request 1 .*needs I \+ O - 1 = 30 \+ 5 - 1 = 34 KV tokens.*M = 20"):
        Simulator(w, COST, EngineConfig(kv_capacity=20, token_budget=8))
    sim = Simulator(w, COST, EngineConfig(kv_capacity=20, token_budget=8), oversized="reject")
    metrics = sim.run(VLLMScheduler())
    assert metrics["finished"] == 1 and metrics["rejected"] == 1 and sim.done
    assert np.isnan(metrics.requests["ttlt"][1]) and metrics.requests["rejected"][1]


def test_cost_model_returning_garbage_is_caught():
    class Broken(LinearCostModel):
        def batch_time(self, batch):
            return float("nan")

    sim = Simulator(Workload.from_lists([2], [1]), Broken(), EngineConfig(kv_capacity=10, token_budget=10))
    with pytest.raises(InfeasibleDecisionError, match="non-positive batch time"):
        sim.step(Decision([0], [2]))


def test_clone_is_independent_and_replays_identically():
    w = Workload.from_lists([4, 6, 3], [3, 2, 4], arrival=[0, 0.01, 0.02])
    sim = Simulator(w, COST, EngineConfig(kv_capacity=12, token_budget=6))
    rng = np.random.default_rng(3)
    sim.step(random_feasible_decision(sim, rng))
    twin = sim.clone()
    decisions = []
    while not sim.done:
        decisions.append(random_feasible_decision(sim, rng))
        sim.step(decisions[-1])
    assert not twin.done and twin.num_iterations == 1
    for decision in decisions:
        twin.step(decision)
    assert twin.clock == sim.clock and np.array_equal(twin.finish_time, sim.finish_time)


def test_run_guard_raises_instead_of_hanging():
    class Stuck:
        def reset(self, sim):
            pass

        def decide(self, sim):  # evicts and re-admits the same request forever
            r = next(iter(sim.resident), None)
            return Decision([], [], [r]) if r is not None else Decision([0], [1])

    w = Workload.from_lists([4], [2], arrival=[0.0])
    sim = Simulator(w, COST, EngineConfig(kv_capacity=10, token_budget=10))
    with pytest.raises((RuntimeError, InfeasibleDecisionError)):
        sim.run(Stuck(), max_iterations=50)


def test_waiting_by_arrival_orders_evicted_requests_by_arrival():
    w = Workload.from_lists([2] * 4, [3] * 4, arrival=[0, 0, 0, 0])
    sim = Simulator(w, ConstantCost(), EngineConfig(kv_capacity=20, token_budget=20))
    sim.step(Decision([0, 1], [2, 2]))
    sim.step(Decision([2], [2], [1, 0]))
    assert sim.waiting == {0, 1, 3} and sim.evicted_waiting == [0, 1]
    assert list(sim.waiting_by_arrival()) == [0, 1, 3]


def test_vllm_replay_is_deterministic_and_consistent():
    rng = np.random.default_rng(0)
    n = 60
    w = Workload(np.cumsum(rng.exponential(0.05, n)), rng.integers(50, 400, n), rng.integers(1, 200, n))
    runs = [Simulator(w, COST, EngineConfig(kv_capacity=3000, token_budget=1024)).run(VLLMScheduler())
            for _ in range(2)]
    assert runs[0].summary == runs[1].summary
    assert runs[0]["finished"] == n and runs[0]["evictions"] > 0  # memory is tight enough to preempt


def test_run_pushes_every_step_result_to_a_scheduler_on_step_hook():
    workload = Workload.from_lists([5, 3, 8, 2], [3, 4, 2, 5], [0.0, 0.0, 5.0, 5.0])  # idles between the groups
    sim = Simulator(workload, COST, EngineConfig(kv_capacity=12, token_budget=6))
    scheduler = RecordingVLLM()
    metrics = sim.run(scheduler)
    launched = [r for r in scheduler.results if r.batch_time > 0]
    assert [r.decision for r in launched] == sim.log.decisions and len(launched) == metrics["iterations"]
    assert sum(r.latency_area for r in scheduler.results) == pytest.approx(metrics["sum_ttlt"])
    assert sorted(np.concatenate([r.finished for r in scheduler.results]).tolist()) == [0, 1, 2, 3]
    assert all(r.breakdown is None for r in scheduler.results)  # priced without a breakdown unless asked


def test_breakdown_on_request_matches_the_batch_time():
    sim = Simulator(Workload.from_lists([5, 3], [3, 4]), COST, EngineConfig(kv_capacity=20, token_budget=8),
                    breakdown=True)
    result = sim.step(Decision([0, 1], [5, 3]))
    assert result.batch_time == COST.batch_time(result.batch)
    assert sum(result.breakdown.values()) == pytest.approx(result.batch_time, rel=1e-12)


def test_objective_names_are_defined_once():
    from infermax_env import OBJECTIVES, Objective, objective_value

    assert OBJECTIVES == ("latency", "gpu_time") and Objective.parse("gpu_time") is Objective.GPU_TIME
    summary = {"sum_ttlt": 3.0, "total_gpu_time": 1.5}
    assert objective_value(summary, "latency") == 3.0 and objective_value(summary, Objective.GPU_TIME) == 1.5
    with pytest.raises(ValueError, match=r"objective must be one of \['latency', 'gpu_time'\], got 'ttlt'"):
        Objective.parse("ttlt")
