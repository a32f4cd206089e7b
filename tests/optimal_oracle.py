"""An independent reference for the CP-SAT optimum and its bounds: exhaustive search over simulator states."""

from __future__ import annotations

import heapq
import itertools

from infermax_env import Decision, EngineConfig, InfeasibleDecisionError, LinearCostModel, Simulator, Workload

COST = LinearCostModel()


def exhaustive_optimum(workload: Workload, engine: EngineConfig, objective: str, cost_model: LinearCostModel = COST,
                       allow_eviction: bool = True) -> float:
    """The best objective over every feasible decision sequence: Dijkstra over simulator states (KV held and tokens
    emitted per request; with offline arrivals an iteration's cost depends only on the state and the decision),
    each transition checked by ``Simulator.step`` on a clone. Evictions make the state graph cyclic, hence
    Dijkstra rather than memoised recursion; every step costs a positive amount."""
    start = Simulator(workload, cost_model, engine)
    counter = itertools.count()
    frontier = [(0.0, next(counter), start)]
    settled: set[tuple] = set()
    while frontier:
        cost, _, sim = heapq.heappop(frontier)
        if sim.done:
            return cost
        key = (tuple(sim.kv.tolist()), tuple(sim.generated.tolist()))
        if key in settled:
            continue
        settled.add(key)
        for decision in _all_decisions(sim, allow_eviction):
            child = sim.clone()
            try:
                step = child.step(decision)
            except InfeasibleDecisionError:
                continue
            step_cost = step.batch_time if objective == "gpu_time" else step.latency_area
            heapq.heappush(frontier, (cost + step_cost, next(counter), child))
    raise AssertionError("no feasible schedule")


def _all_decisions(sim: Simulator, allow_eviction: bool):
    """Every non-empty decision: per unfinished request, idle, evict (if resident and allowed) or run 1..need
    tokens."""
    options = []
    for r in range(sim.num_requests):
        if sim.finished[r]:
            continue
        choices = [None] + (["evict"] if allow_eviction and sim.kv[r] > 0 else [])
        choices += list(range(1, min(int(sim.need(r)), sim.config.token_budget) + 1))
        options.append([(r, choice) for choice in choices])
    for combo in itertools.product(*options):
        run = {r: c for r, c in combo if isinstance(c, int)}
        if run and sum(run.values()) <= sim.config.token_budget:
            yield Decision.from_dict(run, [r for r, c in combo if c == "evict"])
