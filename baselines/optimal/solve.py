"""The optimal schedule of a small offline workload, found with OR-Tools CP-SAT (INFERMAX's performance bound).

:func:`solve_optimal` builds the iteration-indexed CSP of :mod:`baselines.optimal.model` (same semantics as
:class:`~infermax_env.simulator.Simulator`), seeds it with the best registered heuristic's schedule as a hint,
solves it and replays the answer through the simulator. The returned :class:`OptimalResult` carries the schedule as
one :class:`~infermax_env.simulator.Decision` per iteration; :class:`ReplayScheduler` replays it on a simulator (and,
through a scheduler-to-policy adapter, in the env).

Scope, checked with clear errors:

* Offline workloads only (every request arrives at the same time, as the Tiny setting does). With online arrivals
  the start clock of an iteration depends on the float batch times, which an integer model can only approximate.
* :class:`~infermax_env.cost.linear.LinearCostModel` only (exact, see :class:`IntegerLinearCost`), with
  non-negative coefficients; ``block_size`` 1.

Time unit and rounding: batch times are integers in units of 0.1 ns (coefficients rounded to whole nanoseconds,
the multi-kernel factor 1.1 kept exact as 11/10; a finer unit made the LP relaxation numerically worse). ``OptimalResult.rounding_bound`` bounds, in seconds, the difference
between the solver's objective and the simulator's float objective for the returned schedule; the schedule is
optimal for the rounded costs, so it is within twice that bound of the float optimum.

Iteration bound (sound, see :func:`iteration_bound`): the hint's objective ``H`` caps the fixed per-iteration
cost an optimal schedule can afford once its tokens and prefill chunks are paid for (for ``latency`` each iteration
is paid once per unfinished request, and the last request, left alone, finishes in its fewest iterations), which
gives the horizon. The result says whether the horizon used was this sound bound
(``iteration_bound_sound``) or a smaller ``max_iterations`` given by the caller.

Lower bounds: the search starts from the closed-form bound of :mod:`baselines.optimal.bounds`, raised first by the
fixed-charge bound (CP-SAT on the model that keeps only the per-batch intercept and kernel constants, for a share of
the time), and the model carries these as cuts and the sound dominance rules of :class:`ScheduleModel` (all
switchable);
:func:`optimum_lower_bound` gives that bound alone, without search, for instances far too large to solve.

Measured scale (proof counts and bound gaps per size): docs/optimal.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
from ortools.sat.python import cp_model

from infermax_env.cost.linear import LinearCostModel
from infermax_env.deployment import EngineConfig
from infermax_env.instances import TINY_ENGINE
from infermax_env.metrics import OBJECTIVES, RunMetrics, compute_metrics, objective_value
from infermax_env.errors import InfeasibleDecisionError
from infermax_env.simulator import Decision, Simulator
from infermax_env.workload import Workload

from .bounds import bound_cuts as closed_form_cuts
from .bounds import closed_form_terms, combine, fixed_charge_bound, lower_bound, term_bounds
from .model import IntegerLinearCost, ModelBuildTimeout, ScheduleInstance, ScheduleModel, configured_solver

HINT_COMPLETION_SECONDS = 10.0
FIXED_CHARGE_SHARE = 0.5
TRUNCATED_TIME_SHARE = 0.5


@dataclass
class OptimalResult:
    """What :func:`solve_optimal` found.

    Attributes:
        status: ``"OPTIMAL"`` (proven within the horizon) or ``"FEASIBLE"`` (best found when time ran out).
        objective: the schedule's objective in seconds, from the solver's integer objective.
        best_bound: the solver's proven lower bound on the objective, in seconds.
        gap: ``(objective - best_bound) / objective`` (0 when optimal).
        wall_time: seconds spent in :func:`solve_optimal` (hint, model building and search).
        num_iterations_bound: the horizon T of the model.
        iteration_bound_sound: whether T is the proven bound (else the caller's smaller ``max_iterations``).
        decisions: the schedule, one decision per iteration.
        objective_name: ``"latency"`` (sum of TTLT) or ``"gpu_time"`` (total batch time).
        source: ``"solver"``; ``"solver+<heuristic>"`` for a truncated model's unfinished solution completed by that
            heuristic; ``"fixed-charge"`` for the best schedule of the fixed-charge bound's model; or the heuristic's
            name when the solver found nothing better in time.
        hint_name: the heuristic whose schedule seeded the search (``"given"`` for a caller's hint, None if none).
        hint_objective: that schedule's objective in seconds (float simulator value; with ``dominance_rules``, of
            the schedule rewritten by :func:`normalize_schedule`, which never costs more).
        rounding_bound: seconds by which ``objective`` may differ from the simulator's value of ``decisions``.
        replayed: the simulator's metrics of the schedule.
    """

    status: str
    objective: float
    best_bound: float
    gap: float
    wall_time: float
    num_iterations_bound: int
    iteration_bound_sound: bool
    decisions: list[Decision]
    objective_name: str
    source: str
    hint_name: str | None
    hint_objective: float | None
    rounding_bound: float
    replayed: RunMetrics | None = field(default=None, repr=False)

    @property
    def replayed_objective(self) -> float:
        """The simulator's float value of the schedule."""
        if self.replayed is None:
            raise ValueError("this result was not replayed through the simulator")
        return objective_value(self.replayed, self.objective_name)

    def scheduler(self) -> "ReplayScheduler":
        """A scheduler that replays :attr:`decisions`."""
        return ReplayScheduler(self.decisions)


class ReplayScheduler:
    """Replays a fixed schedule (a list of decisions, one per iteration) on a :class:`Simulator`.

    Raises ``RuntimeError`` when asked for more decisions than the schedule holds.
    """

    name = "replay"

    def __init__(self, decisions: Sequence[Decision]):
        self.decisions = list(decisions)
        self._next = 0

    def reset(self, sim: Simulator) -> None:
        self._next = 0

    def decide(self, sim: Simulator) -> Decision:
        if self._next >= len(self.decisions):
            raise RuntimeError(f"the replayed schedule has only {len(self.decisions)} decisions but the simulation is "
                               f"not done ({sim.num_done}/{sim.num_requests} requests finished)")
        decision = self.decisions[self._next]
        self._next += 1
        return decision


@dataclass(frozen=True)
class _Replay:
    """A schedule run through the simulator, with its value in the model's integer units."""

    metrics: RunMetrics
    integer_objective: int
    rounding_bound: float
    finish_iteration: np.ndarray


def _replay(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig, decisions: Sequence[Decision],
            cost: IntegerLinearCost, objective: str) -> _Replay:
    """Step ``decisions`` through a fresh simulator (every simulator check applies) and price them in integers."""
    sim = Simulator(workload, cost_model, engine)
    integer_objective, rounding = 0, 0.0
    finish_iteration = np.full(len(workload), -1)
    for t, decision in enumerate(decisions):
        unfinished = 1 if objective == "gpu_time" else len(sim.waiting) + len(sim.resident)
        step = sim.step(decision)
        integer_objective += unfinished * cost.batch_time(step.batch)
        rounding += unfinished * cost.rounding_bound(step.batch)
        finish_iteration[step.finished] = t
    if not sim.done:
        raise ValueError(f"the schedule of {len(decisions)} decisions leaves {sim.num_requests - sim.num_done} "
                         f"requests unfinished")
    return _Replay(compute_metrics(sim), integer_objective, rounding, finish_iteration)


def _check_inputs(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig, objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be 'latency' or 'gpu_time', got {objective!r}")
    if len(workload) == 0:
        raise ValueError("the workload is empty")
    if not np.all(workload.arrival == workload.arrival[0]):
        raise ValueError(f"solve_optimal handles offline workloads (all requests arriving together); arrivals range "
                         f"from {workload.arrival.min()} to {workload.arrival.max()} s. Use workload.all_at_zero() "
                         f"for the offline version")
    if engine.block_size != 1:
        raise ValueError(f"solve_optimal needs block_size 1 (token-granular KV), got {engine.block_size}")
    Simulator(workload, cost_model, engine)  # raises WorkloadError for a request that cannot fit in M


def best_heuristic_schedule(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig, objective: str,
                            allow_eviction: bool = True, prefix: Sequence[Decision] = (),
                            deadline: float | None = None) -> tuple[str, list[Decision], float] | None:
    """Run every registered heuristic (``baselines.SCHEDULERS``) from the state after ``prefix`` and return the best
    one's name, complete decisions (``prefix`` included) and objective value (seconds). With ``allow_eviction``
    False only runs that never evict count. With ``deadline`` (a :func:`time.perf_counter` value) no further
    heuristic starts once it has passed and one qualifies. A fixed-reservation heuristic that cannot continue from
    the prefix's state without evicting is skipped. None when no heuristic qualifies."""
    from .. import SCHEDULERS
    from ..variants import ReservationExceededError

    start = Simulator(workload, cost_model, engine)
    for decision in prefix:
        start.step(decision)
    best: tuple[str, list[Decision], float] | None = None
    for name, scheduler_class in SCHEDULERS.items():
        if best is not None and deadline is not None and time.perf_counter() > deadline:
            break
        sim = start.clone()
        try:
            metrics = sim.run(scheduler_class())
        except ReservationExceededError:
            continue
        value = objective_value(metrics, objective)
        if (allow_eviction or metrics["evictions"] == 0) and (best is None or value < best[2]):
            best = (name, list(sim.log.decisions), value)
    return best


def _starting_schedule(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig, objective: str,
                       allow_eviction: bool, deadline: float | None = None) -> tuple[str, list[Decision]]:
    """The best heuristic's schedule, or :func:`serial_schedule` when none qualifies (every one evicts while
    eviction is forbidden)."""
    best = best_heuristic_schedule(workload, cost_model, engine, objective, allow_eviction, deadline=deadline)
    if best is None:
        return "serial", serial_schedule(workload, cost_model, engine)
    return best[0], best[1]


def serial_schedule(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig) -> list[Decision]:
    """Requests one at a time in arrival order, each prompt in chunks of at most C then its decodes: always feasible
    (every request fits M alone) and never evicts."""
    sim = Simulator(workload, cost_model, engine)
    for r in range(len(workload)):
        while not sim.finished[r]:
            sim.step(Decision([r], [min(int(sim.need(r)), engine.token_budget)]))
    return list(sim.log.decisions)


def _trace(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig,
           decisions: Sequence[Decision]) -> list[tuple[dict[int, int], set[int], set[int], set[int]]]:
    """Per iteration: the tokens run per request, the evicted ids, the ids that continue a prefill (KV held after
    eviction and not decoding) and the ids that emitted a token."""
    sim = Simulator(workload, cost_model, engine)
    out = []
    for decision in decisions:
        run = dict(zip(decision.run_ids.tolist(), decision.run_tokens.tolist()))
        evicted = set(decision.evict_ids.tolist())
        continuing = {r for r in run if r not in evicted and sim.kv[r] > 0 and not sim.is_decoding(r)}
        step = sim.step(decision)
        out.append((run, evicted, continuing, set(step.emitted.tolist())))
    return out


def normalize_schedule(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig,
                       decisions: Sequence[Decision], deadline: float | None = None) -> list[Decision]:
    """Rewrite ``decisions`` to satisfy the model's dominance rules by the transformations that prove them
    (:meth:`ScheduleModel._add_eviction_after_emission`, :meth:`ScheduleModel._add_full_continuations`): a
    continued prefill chunk in an iteration below ``C`` tokens takes tokens from the request's previous chunk, and an
    eviction not right after an emission moves one iteration earlier (dropping the discarded chunk). Every step
    keeps the schedule feasible and never raises its cost. A step that would leave an iteration evicting without
    running anything is not taken (the schedule is returned as it stands); at ``deadline`` (a
    :func:`time.perf_counter` value) the schedule is returned as normalized so far."""
    schedule = [(dict(zip(d.run_ids.tolist(), d.run_tokens.tolist())), set(d.evict_ids.tolist()))
                for d in decisions]

    def build() -> list[Decision]:
        return [Decision.from_dict(run, sorted(evict)) for run, evict in schedule if run or evict]

    validated = list(decisions)
    for _ in range(100 * len(schedule) + 1):
        candidate = build()
        try:
            trace = _trace(workload, cost_model, engine, candidate)
        except InfeasibleDecisionError:
            return validated
        validated = candidate
        if deadline is not None and time.perf_counter() > deadline:
            return validated
        schedule = [(run, evicted) for run, evicted, _, _ in trace]
        changed = False
        for t, (run, evicted, continuing, _) in enumerate(trace):
            slack = engine.token_budget - sum(run.values())
            for r in sorted(continuing):
                earlier = max((u for u in range(t) if r in schedule[u][0]), default=None)
                if slack <= 0 or earlier is None:
                    continue
                moved = min(slack, schedule[earlier][0][r])
                schedule[earlier][0][r] -= moved
                if not schedule[earlier][0][r]:
                    del schedule[earlier][0][r]
                run[r] += moved
                changed = True
                break
            if changed:
                break
            for r in sorted(evicted):
                if t == 0 or r in trace[t - 1][3]:
                    continue
                previous_run, previous_evicted = schedule[t - 1]
                if r in previous_run:  # a chunk the eviction throws away
                    del previous_run[r]
                if not previous_run:
                    return validated
                evicted.discard(r)
                if _held_before(trace, t - 1, r):
                    previous_evicted.add(r)
                changed = True
                break
            if changed:
                break
        if not changed:
            return validated
    return validated


def _held_before(trace: list, t: int, r: int) -> bool:
    """Whether request ``r`` holds KV before iteration ``t`` of a traced schedule."""
    for u in range(t - 1, -1, -1):
        run, evicted, _, _ = trace[u]
        if r in evicted:
            return False
        if r in run:
            return True
    return False


def _relabel_identical(decisions: Sequence[Decision], instance: ScheduleInstance,
                       finish_iteration: np.ndarray) -> list[Decision]:
    """Swap ids of interchangeable requests so that, in each group, lower ids finish no later (the model's symmetry
    breaking); the relabelled schedule is equivalent."""
    mapping = np.arange(instance.num_requests)
    for group in instance.identical_groups():
        by_finish = sorted(group, key=lambda r: finish_iteration[r])
        mapping[by_finish] = group
    return [Decision(mapping[d.run_ids], d.run_tokens, mapping[d.evict_ids]) for d in decisions]


def iteration_bound(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str, upper_bound: int) -> int:
    """A horizon T such that every optimal schedule has at most T iterations, given a schedule of integer objective
    ``upper_bound``.

    A batch of ``N`` tokens costs at least ``h + a N`` (``a`` the per-token term, ``h = t_min - a``), and
    ``p = t_prefill - t_min`` more when it holds a prefill chunk. For ``gpu_time``: the ``T`` iterations compute at
    least ``W = sum (I + O - 1)`` tokens and at least ``ceil(sum I / C)`` of them hold prefill chunks, so
    ``h T <= upper_bound - a W - p ceil(sum I / C)``. For ``latency``: request ``r`` stays unfinished for ``f_r``
    iterations, in which it runs its own prefill and every request finishing no later than ``r`` computes all its
    tokens, so (as for shortest-first on one machine, with the ``W_r`` sorted ascending)
    ``upper_bound >= h F + a sum_k (n - k + 1) W_(k) + n p`` bounds ``F = sum f_r``. Sorting the ``f_r``,
    ``f_1..f_{n-2}`` are each at least a request's fewest possible iterations, and once only the last request is
    left an optimal schedule finishes it alone in the fewest iterations (every extra iteration costs more), at most
    ``max_r min_iterations(r)`` from any state: ``f_n <= f_{n-1} + max_r min_iterations(r)``. Hence
    ``2 f_n <= F - (sum of the n-2 smallest minima) + max_r min_iterations(r)``.
    """
    n = instance.num_requests
    per_token = cost.mult_den * cost.k_ao
    overhead = cost.min_batch_time() - per_token
    prefill_extra = cost.min_prefill_batch_time() - cost.min_batch_time()
    tokens = sorted(instance.prompt_len[r] + instance.output_len[r] - 1 for r in range(n))
    if objective == "gpu_time":
        prefill_iterations = math.ceil(sum(instance.prompt_len) / instance.token_budget)
        return (upper_bound - per_token * sum(tokens) - prefill_extra * prefill_iterations) // overhead
    shortest_first = sum((n - k) * w for k, w in enumerate(tokens))
    unfinished = (upper_bound - per_token * shortest_first - prefill_extra * n) // overhead
    fewest = sorted(instance.min_iterations(r) for r in range(n))
    if n == 1:
        return min(unfinished, fewest[0])
    return min(unfinished, (unfinished - sum(fewest[: n - 2]) + fewest[-1]) // 2)


def trivial_lower_bound(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str) -> int:
    """A bound that needs no search: request ``r`` stays unfinished for at least its fewest iterations, each costing
    at least ``t_min`` (latency: summed over requests; GPU time: the longest request's)."""
    fewest = [instance.min_iterations(r) for r in range(instance.num_requests)]
    return cost.min_batch_time() * (sum(fewest) if objective == "latency" else max(fewest))


def _add_complete_hint(schedule: ScheduleModel, decisions: Sequence[Decision], deadline: float, seed: int) -> None:
    """Hint every variable of ``schedule`` with its value under ``decisions``: solve a copy without the optional
    dominance rules and cuts (the hint may break a rule) with the decisions fixed (propagation alone determines the
    rest) and copy the values by variable index. Adds no hint when
    ``HINT_COMPLETION_SECONDS`` or the ``deadline`` runs out first (the search then starts without one; the incumbent
    schedule is kept by the caller)."""
    try:
        fixed = ScheduleModel(schedule.instance, schedule.cost, schedule.objective_name, schedule.horizon,
                              truncated_bound=schedule.truncated_bound, deadline=deadline)
    except ModelBuildTimeout:
        return
    fixed.fix_decisions(list(decisions))
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return
    solver = configured_solver(min(HINT_COMPLETION_SECONDS, remaining), 1, seed, False)
    status = solver.solve(fixed.model)
    if status == cp_model.UNKNOWN:
        return
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"the hint schedule is not a solution of the CP-SAT model ({solver.status_name(status)}); "
                           f"the model and the simulator disagree")
    # The optional rules create their variables last, so the rule-free copy's variables are a prefix of the model's.
    for index in range(len(fixed.model.proto.variables)):
        variable = schedule.model.get_int_var_from_proto_index(index)
        schedule.model.add_hint(variable, solver.value(fixed.model.get_int_var_from_proto_index(index)))


class _Solutions(cp_model.CpSolverSolutionCallback):
    """Records the best solution of a (possibly truncated) model that finishes every request, and the latest one
    that does not: a truncated model's solutions may leave requests unfinished, yet complete ones found on the way
    are real schedules, and an unfinished one is the prefix of a real schedule once a heuristic completes it."""

    def __init__(self, schedule: ScheduleModel):
        super().__init__()
        self.schedule = schedule
        self.best: tuple[int, list[Decision]] | None = None
        self.unfinished_prefix: list[Decision] | None = None

    def on_solution_callback(self) -> None:
        value = round(self.objective_value)
        if not self.schedule.is_complete(self):
            self.unfinished_prefix = self.schedule.decisions(self)
        elif self.best is None or value < self.best[0]:
            self.best = (value, self.schedule.decisions(self))


@dataclass
class _Search:
    """The state of the deepening search: the best real schedule so far and the best proven lower bound."""

    decisions: list[Decision]
    integer_objective: int
    source: str | None
    finish_iteration: np.ndarray
    lower_bound: int

    @property
    def proven(self) -> bool:
        return self.lower_bound >= self.integer_objective


def solve_optimal(workload: Workload, cost_model: LinearCostModel | None = None, engine: EngineConfig = TINY_ENGINE,
                  objective: str = "latency", *, time_limit: float = 60.0, workers: int = 2, seed: int = 0,
                  allow_eviction: bool = True, hint: Sequence[Decision] | None = None,
                  max_iterations: int | None = None, initial_horizon: int | None = None, log: bool = False,
                  solver_parameters: Mapping[str, object] | None = None, dominance_rules: bool = True,
                  bound_cuts: bool = True, fixed_charge_share: float = FIXED_CHARGE_SHARE) -> OptimalResult:
    """The optimal schedule of an offline ``workload`` under ``engine`` and ``cost_model``, by CP-SAT.

    The search deepens the horizon: it solves the truncated relaxation (:class:`ScheduleModel` with
    ``truncated=True``) of ``T`` iterations, starting at the hint's length, whose optimum is a lower bound for every
    horizon, for at most ``TRUNCATED_TIME_SHARE`` of the remaining time; when that optimum leaves requests unfinished
    or is not proven in that time, it grows ``T`` by a quarter (the sound :func:`iteration_bound`, reached at last,
    needs no truncation and gets all the remaining time). The answer is proven optimal as soon as a complete
    schedule's cost meets the best lower bound (every solve's bound is a valid lower bound).

    Args:
        objective: ``"latency"`` (sum of TTLT) or ``"gpu_time"`` (total batch time).
        time_limit: wall-clock seconds for the whole call (choosing the hint, building the models and searching);
            when it runs out the call returns the best schedule found (at least the hint, ``"FEASIBLE"``) with the
            best proven bound. A model still being built at the limit is abandoned.
        workers, seed: CP-SAT ``num_workers`` and ``random_seed``.
        allow_eviction: False forbids preemption (every request keeps its KV until it finishes).
        hint: a feasible schedule to start from; by default the best registered heuristic's (with eviction
            forbidden, the best one that never evicts, else :func:`serial_schedule`).
        max_iterations: cap the horizon below the sound bound (the result then says ``iteration_bound_sound``
            False: optimal among schedules of at most that many iterations; no deepening).
        initial_horizon: the first horizon of the deepening (default: the hint's number of iterations).
        log: print CP-SAT's search log.
        dominance_rules: add the sound dominance rules to the model (evict only right after an emission; a
            continued prefill chunk only in an iteration of exactly ``C`` tokens, where the cost model's coefficients
            make that rule sound). See :class:`ScheduleModel`.
        bound_cuts: start from the closed-form bound (:func:`~baselines.optimal.bounds.lower_bound`) and add its
            counts and objective bound as cuts to the models of the sound horizon. With both flags False the model
            and its starting bound are those before the rules and bounds existed.
        fixed_charge_share: the share of the time left after the hint spent first on the fixed-charge bound
            (:func:`~baselines.optimal.bounds.fixed_charge_bound` over the horizon, plus the per-request amounts),
            which raises the starting bound and, with ``bound_cuts``, the models' objective cut; 0 skips it. The
            search gets the rest.
        solver_parameters: further CP-SAT ``SatParameters`` fields by name (they override the defaults here).

    Raises:
        WorkloadError: a request cannot fit in the KV capacity.
        ValueError: online arrivals, a bad objective, a ``time_limit`` that is not a positive number, a
            ``fixed_charge_share`` outside ``[0, 1)``, block size
            above 1, a hint that evicts while eviction is forbidden, a non-positive ``initial_horizon``, or no
            schedule within ``max_iterations``.
        InfeasibleDecisionError: a hint the simulator rejects.
        TypeError: a cost model other than :class:`LinearCostModel`.
    """
    started = time.perf_counter()
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    deadline = started + time_limit
    if isinstance(fixed_charge_share, bool) or not isinstance(fixed_charge_share, (int, float)) \
            or not 0 <= fixed_charge_share < 1:
        raise ValueError(f"fixed_charge_share must be in [0, 1), got {fixed_charge_share!r}")
    cost_model = LinearCostModel() if cost_model is None else cost_model
    _check_inputs(workload, cost_model, engine, objective)
    if initial_horizon is not None and initial_horizon < 1:
        raise ValueError(f"initial_horizon must be positive, got {initial_horizon}")
    cost = IntegerLinearCost.from_cost_model(cost_model)
    instance = ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()),
                                engine.kv_capacity, engine.token_budget, engine.max_batch_size)

    hint_name, hint_decisions = ("given", list(hint)) if hint is not None else (None, None)
    if hint is None:
        hint_name, hint_decisions = _starting_schedule(workload, cost_model, engine, objective, allow_eviction,
                                                       deadline)
    hint_replay = _replay(workload, cost_model, engine, hint_decisions, cost, objective)
    if not allow_eviction and hint_replay.metrics["evictions"]:
        raise ValueError("allow_eviction=False but the given hint evicts")
    if dominance_rules:  # a hint that breaks a rule would not be a solution of the model
        hint_decisions = normalize_schedule(workload, cost_model, engine, hint_decisions, deadline)
        hint_replay = _replay(workload, cost_model, engine, hint_decisions, cost, objective)

    bound = iteration_bound(instance, cost, objective, hint_replay.integer_objective)
    if bound < len(hint_decisions):
        raise AssertionError(f"iteration bound {bound} below the hint's {len(hint_decisions)} iterations")
    capped, sound = _horizon(instance, bound, max_iterations)
    search = _Search(hint_decisions, hint_replay.integer_objective, hint_name, hint_replay.finish_iteration,
                     max(trivial_lower_bound(instance, cost, objective),
                         lower_bound(instance, cost, objective) if bound_cuts else 0))
    horizon = capped if not sound else min(bound, max(initial_horizon or len(hint_decisions), 1))
    cuts = closed_form_cuts(instance, cost, objective) if bound_cuts else None
    if fixed_charge_share > 0:
        now = time.perf_counter()
        fixed = fixed_charge_bound(instance, cost, objective, capped, now + fixed_charge_share * (deadline - now),
                                   workers, seed)
        if fixed is not None:
            search.lower_bound = max(search.lower_bound,
                                     fixed.bound + closed_form_terms(instance, cost, objective).per_request)
            if cuts is not None:
                cuts = replace(cuts, objective=max(cuts.objective, search.lower_bound))
            _absorb_schedule(search, "fixed-charge", fixed.decisions, workload, cost_model, engine, cost, objective,
                             allow_eviction)
    while time.perf_counter() < deadline:
        truncated = sound and horizon < bound
        try:
            schedule = ScheduleModel(instance, cost, objective, horizon, allow_eviction=allow_eviction,
                                     truncated_bound=bound if truncated else None, deadline=deadline,
                                     evict_after_emission=dominance_rules, full_continuations=dominance_rules,
                                     bound_cuts=cuts)
        except ModelBuildTimeout:
            break
        if len(search.decisions) <= horizon:
            if dominance_rules:
                search.decisions = normalize_schedule(workload, cost_model, engine, search.decisions, deadline)
                replay = _replay(workload, cost_model, engine, search.decisions, cost, objective)
                search.integer_objective, search.finish_iteration = replay.integer_objective, replay.finish_iteration
            relabelled = _relabel_identical(search.decisions, instance, search.finish_iteration)
            _add_complete_hint(schedule, relabelled, deadline, seed)
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        solver = configured_solver(remaining * TRUNCATED_TIME_SHARE if truncated else remaining, workers, seed, log,
                         solver_parameters)
        callback = _Solutions(schedule)
        status = solver.solve(schedule.model, callback)
        if status == cp_model.INFEASIBLE:
            raise ValueError(f"no schedule finishes within {horizon} iterations (max_iterations too small)")
        _absorb(search, schedule, solver, status, callback, workload, cost_model, engine, cost, objective,
                allow_eviction, deadline)
        if search.proven or not truncated:
            break
        horizon = min(bound, horizon + max(1, math.ceil(horizon / 4)))
    return _result(workload, cost_model, engine, objective, search, horizon, sound, hint_name, hint_replay, cost,
                   started)


def _absorb(search: _Search, schedule: ScheduleModel, solver: cp_model.CpSolver, status: int,
            callback: _Solutions, workload: Workload, cost_model: LinearCostModel, engine: EngineConfig,
            cost: IntegerLinearCost, objective: str, allow_eviction: bool, deadline: float) -> None:
    """Update ``search`` with a solve's best schedule and its lower bound (a truncated model's bound holds for every
    horizon; an untruncated model's answer is optimal when the status is OPTIMAL). Candidates: the best complete
    solution, and the latest unfinished one completed by the best heuristic from where it stops."""
    if status == cp_model.UNKNOWN:
        return
    candidates = []
    if callback.best is not None:
        value, decisions = callback.best
        replay = _replay(workload, cost_model, engine, decisions, cost, objective)
        if replay.integer_objective != value:
            raise AssertionError(f"the model's objective {value} differs from the replayed schedule's "
                                 f"{replay.integer_objective} (integer units): the model and the simulator disagree")
        candidates.append(("solver", decisions, replay))
    if callback.unfinished_prefix is not None:
        completed = best_heuristic_schedule(workload, cost_model, engine, objective, allow_eviction,
                                            prefix=callback.unfinished_prefix, deadline=deadline)
        if completed is not None:
            name, decisions, _ = completed
            candidates.append((f"solver+{name}", decisions, _replay(workload, cost_model, engine, decisions, cost,
                                                                     objective)))
    for source, decisions, replay in candidates:
        _take_if_better(search, source, decisions, replay)
    search.lower_bound = max(search.lower_bound, math.ceil(solver.best_objective_bound))


def _take_if_better(search: _Search, source: str, decisions: list[Decision], replay: _Replay) -> None:
    if replay.integer_objective < search.integer_objective:
        search.decisions, search.integer_objective = decisions, replay.integer_objective
        search.source, search.finish_iteration = source, replay.finish_iteration


def _absorb_schedule(search: _Search, source: str, decisions: list[Decision], workload: Workload,
                     cost_model: LinearCostModel, engine: EngineConfig, cost: IntegerLinearCost, objective: str,
                     allow_eviction: bool) -> None:
    """Replay a complete schedule found outside the search (the fixed-charge model's) and keep it if cheaper."""
    replay = _replay(workload, cost_model, engine, decisions, cost, objective)
    if allow_eviction or not replay.metrics["evictions"]:
        _take_if_better(search, source, decisions, replay)


@dataclass(frozen=True)
class OptimumBound:
    """A proven lower bound on the optimal objective of an instance, beside the best schedule known.

    Attributes:
        bound: seconds; no schedule (eviction allowed) has a smaller float objective.
        best_known: the best registered heuristic's objective in seconds (an upper bound on the optimum).
        best_known_name: that heuristic.
        proven_terms: whether every CP-SAT term solve proved its optimum (True when none ran).
    """

    bound: float
    best_known: float
    best_known_name: str
    proven_terms: bool

    @property
    def gap(self) -> float:
        """``(best_known - bound) / best_known``: the most the best heuristic can be above the optimum."""
        return (self.best_known - self.bound) / self.best_known


def optimum_lower_bound(workload: Workload, cost_model: LinearCostModel | None = None,
                        engine: EngineConfig = TINY_ENGINE, objective: str = "latency", *, term_time_limit: float = 0.0,
                        workers: int = 2, seed: int = 0) -> OptimumBound:
    """A sound lower bound on the optimum of an offline ``workload`` without solving it (for instances far beyond
    what :func:`solve_optimal` proves): :func:`~baselines.optimal.bounds.lower_bound` in closed form, and with
    ``term_time_limit > 0`` the CP-SAT bounds of the fixed-charge and single-term models
(:func:`~baselines.optimal.bounds.term_bounds`)
    within that many seconds. Priced with every coefficient rounded down, so it holds for the simulator's float
    objective, not only for the solver's rounded one.

    Raises the errors of :func:`solve_optimal` for bad input, and ``ValueError`` for a negative or NaN
    ``term_time_limit``."""
    cost_model = LinearCostModel() if cost_model is None else cost_model
    _check_inputs(workload, cost_model, engine, objective)
    if isinstance(term_time_limit, bool) or not isinstance(term_time_limit, (int, float)) or not term_time_limit >= 0:
        raise ValueError(f"term_time_limit must be a non-negative number of seconds, got {term_time_limit!r}")
    cost = IntegerLinearCost.from_cost_model(cost_model, round_down=True)
    instance = ScheduleInstance(tuple(workload.prompt_len.tolist()), tuple(workload.output_len.tolist()),
                                engine.kv_capacity, engine.token_budget, engine.max_batch_size)
    name, decisions, value = best_heuristic_schedule(workload, cost_model, engine, objective)
    bound, proven = lower_bound(instance, cost, objective), True
    if term_time_limit > 0:
        # The float optimum costs at most ``value``, and at least its rounded-down price: iteration_bound of that
        # price covers the float-optimal schedule.
        horizon = iteration_bound(instance, cost, objective, math.ceil(value / cost.unit_seconds))
        terms = term_bounds(instance, cost, objective, horizon, term_time_limit, workers, seed)
        bound, proven = max(bound, combine(terms, cost)), terms.proven
    return OptimumBound(bound * cost.unit_seconds, value, name, proven)


def _horizon(instance: ScheduleInstance, bound: int, max_iterations: int | None) -> tuple[int, bool]:
    """The model's horizon and whether it is the sound bound."""
    fewest = max(instance.min_iterations(r) for r in range(instance.num_requests))
    if max_iterations is not None and max_iterations < fewest:
        raise ValueError(f"max_iterations={max_iterations} is below the {fewest} iterations the longest request needs")
    if max_iterations is not None and max_iterations < bound:
        return max_iterations, False
    return bound, True


def _result(workload: Workload, cost_model: LinearCostModel, engine: EngineConfig, objective: str,
            search: _Search, horizon: int, sound: bool, hint_name: str | None, hint_replay: _Replay,
            cost: IntegerLinearCost, started: float) -> OptimalResult:
    """Package the best schedule found (the hint when the solver found nothing better), replayed and checked."""
    unit = cost.unit_seconds
    replay = _replay(workload, cost_model, engine, search.decisions, cost, objective)
    if replay.integer_objective != search.integer_objective:
        raise AssertionError(f"the model's objective {search.integer_objective} differs from the replayed "
                             f"schedule's {replay.integer_objective} (integer units): the model and the simulator "
                             f"disagree")
    best_bound = min(search.lower_bound, search.integer_objective) * unit
    value = search.integer_objective * unit
    return OptimalResult(
        status="OPTIMAL" if search.proven else "FEASIBLE", objective=value, best_bound=best_bound,
        gap=0.0 if search.proven else (value - best_bound) / value, wall_time=time.perf_counter() - started,
        num_iterations_bound=horizon, iteration_bound_sound=sound, decisions=search.decisions,
        objective_name=objective, source=search.source, hint_name=hint_name,
        hint_objective=objective_value(hint_replay.metrics, objective), rounding_bound=replay.rounding_bound,
        replayed=replay.metrics)
