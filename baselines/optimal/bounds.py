"""Sound lower bounds on the optimum of an offline instance, without search (closed form) or from CP-SAT solves of
single cost terms.

A batch's integer time (:class:`~baselines.optimal.model.IntegerLinearCost`) is a sum of non-negative terms, so any
schedule's objective is at least the sum of lower bounds on its terms. Writing ``den`` for the multiplier of a
single kernel, an iteration ``t`` with ``N_t`` tokens costs at least

    ``den (k_bo + k_bd) + den k_ao N_t + (1 - k_bd / k_bp) Q_t + entries_t``

where ``Q_t`` is the prefill-kernel constant it pays (``den k_bp`` for one prefill chunk, ``num k_bp`` for more, 0
without) and ``entries_t`` its per-entry and prefill-attention terms: every iteration holds a decode (paying the
decode constant ``den k_bd``) unless it holds a prefill chunk, and ``den k_bd <= (k_bd / k_bp) Q_t`` then. (With
``k_bp < k_bd`` the per-iteration constant is ``den (k_bo + k_bp)`` and the ``Q`` term is dropped.) GPU time sums
this over the iterations; latency (sum of TTLT, all requests arriving at 0) weights iteration ``t`` by the number
``u_t`` of requests unfinished before it. Each weighted sum is bounded on its own:

* iterations ``T`` (latency: ``U = sum_t u_t = sum_r C_r``, ``C_r`` the iterations ``r`` stays unfinished): see
  :func:`prefix_bounds`; or the optimum of the intercept-only model (:func:`term_bounds`);
* prefill-kernel charges ``sum_t (u_t) Q_t``: ``den k_bp`` per prefill iteration (:func:`prefix_bounds`), or the
  optimum of the prefill-kernel-only model;
* tokens, entries and attention per request: each request computes at least ``I + O - 1`` tokens, runs at
  least ``ceil(I / C)`` prefill chunks and ``O - 1`` further entries, and its prompt's chunks cost at least
  ``k_ap I^2`` (``sum c (c + 2 m)`` over the chunks of a prompt telescopes to ``I^2``; recomputation only adds).
  Its token ``g >= 1`` is emitted by a decode over ``I + g - 1`` tokens of context, or after an eviction that threw
  away exactly those ``I + g - 1`` tokens (a decode-ready request's KV stays at ``I + g - 1`` until it emits or is
  evicted), which are computed again beyond the ``I + O - 1``: at least ``min(k_ad, k_ao) (I + g - 1)`` either way.
  For latency the cheapest order charges these shortest-first (the ``k``-th request to finish waits for the work
  of ``k`` requests, at least the ``k`` smallest amounts).

The fixed charges (intercept and both kernel constants, with their multi-kernel factors) are also bounded together,
by CP-SAT's proven bound on the model whose cost keeps only them (:func:`fixed_charge_bound`); the objective is then
at least that bound plus the per-request amounts, which are charged to the other coefficients only.

The soundness argument for each count is in the function docstrings; ``docs/optimal.md`` has the whole argument and
the measured tightness.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from infermax_env.metrics import OBJECTIVES
from infermax_env.simulator import Decision

from .model import BoundCuts, IntegerLinearCost, ModelBuildTimeout, ScheduleInstance, ScheduleModel, configured_solver

PACKING_DEPTH = 4
FIXED_CHARGES = ("k_bo", "k_bd", "k_bp")


@dataclass(frozen=True)
class PrefixBounds:
    """Per ``k = 1..n``: lower bounds on the iterations before the ``k``-th request finishes (``iterations[k-1]``) and
    on the prefill iterations among them (``prefill_iterations[k-1]``). The last entries bound the whole schedule."""

    iterations: tuple[int, ...]
    prefill_iterations: tuple[int, ...]


def _k_smallest_sums(values: list[int]) -> list[int]:
    """``out[k-1]`` = sum of the ``k`` smallest ``values``."""
    out, total = [], 0
    for value in sorted(values):
        total += value
        out.append(total)
    return out


def _k_smallest(values: list[int]) -> list[int]:
    return sorted(values)


def emission_area(prompt: int, output: int, tail: int = 0) -> int:
    """KV held summed over the iterations emitting a request's tokens ``g < O - tail``: the ``(g+1)``-th token is
    emitted with ``I + g`` tokens of KV, whatever was evicted and recomputed before, so ``m I + m (m - 1) / 2``
    with ``m = max(0, O - tail)``."""
    m = max(0, output - tail)
    return m * prompt + m * (m - 1) // 2


def emissions_above(prompt: int, output: int, size: int) -> int:
    """How many of a request's emissions hold more than ``size`` KV tokens (``I + g > size``, ``g < O``)."""
    first = size + 1 - prompt  # the smallest g with I + g > size
    return output - min(max(first, 0), output)


def prefix_bounds(instance: ScheduleInstance) -> PrefixBounds:
    """Lower bounds for every ``k`` on ``C_(k)``, the iterations up to the ``k``-th finish, and on the prefill
    iterations among them.

    The ``k`` first finishers ``S`` emit all their tokens and run all their prompts within the first ``C_(k)``
    iterations, so each of these is at least the value for the best possible ``S`` of size ``k`` (the ``k``
    smallest per-request amounts, each bound taken separately):

    * the ``k``-th smallest fewest-iterations ``ceil(I / C) + O - 1``;
    * tokens: ``sum_S (I + O - 1) / C`` (at most ``C`` tokens per iteration);
    * emissions: ``sum_S O / B`` (one token per running request, at most ``B`` requests per iteration);
    * memory: the emissions of ``r`` hold ``I, ..., I + O - 1`` KV tokens in their iterations and an iteration holds
      at most ``M``. In the last ``L`` of the ``C_(k)`` iterations a request emits at most ``L`` tokens, so its
      emissions ``g < O - L`` fit the first ``C_(k) - L``: ``C_(k) >= L + sum_S A_L / M`` with
      ``A_L = sum_{g < O - L} (I + g)`` (for every ``L`` with ``sum_S A_L > 0``; ``L = 0`` is the KV area). And for
      ``j = 1..PACKING_DEPTH`` at most ``j`` emissions of more than ``M / (j + 1)`` tokens fit one iteration.

    Prefill iterations: the ``k``-th smallest ``ceil(I / C)``; ``sum_S I / C``; and each request's first emission
    holds ``I`` KV tokens in a prefill iteration, at most ``j`` of them above ``M / (j + 1)`` per iteration.
    """
    n, m, c, b = instance.num_requests, instance.kv_capacity, instance.token_budget, instance.max_batch_size
    requests = range(n)
    fewest = _k_smallest([instance.min_iterations(r) for r in requests])
    tokens = _k_smallest_sums([instance.prompt_len[r] + instance.output_len[r] - 1 for r in requests])
    emissions = _k_smallest_sums(list(instance.output_len))
    lengths = list(zip(instance.prompt_len, instance.output_len))
    tail_areas = [_k_smallest_sums([emission_area(p, o, tail) for p, o in lengths])
                  for tail in range(max(instance.output_len))]
    chunks = _k_smallest([math.ceil(instance.prompt_len[r] / c) for r in requests])
    prompts = _k_smallest_sums(list(instance.prompt_len))
    big_emissions = [_k_smallest_sums([emissions_above(p, o, m // (j + 1)) for p, o in lengths])
                     for j in range(1, PACKING_DEPTH + 1)]
    big_prompts = [_k_smallest_sums([int((j + 1) * instance.prompt_len[r] > m) for r in requests])
                   for j in range(1, PACKING_DEPTH + 1)]
    iterations, prefills = [], []
    for k in range(n):
        packing = max(math.ceil(big[k] / j) for j, big in enumerate(big_emissions, start=1))
        iterations.append(max(fewest[k], math.ceil(tokens[k] / c), math.ceil(emissions[k] / b),
                              packing, *(tail + math.ceil(area[k] / m)
                                         for tail, area in enumerate(tail_areas) if area[k] > 0)))
        first = max(math.ceil(big[k] / j) for j, big in enumerate(big_prompts, start=1))
        prefills.append(max(chunks[k], math.ceil(prompts[k] / c), first))
    return PrefixBounds(tuple(iterations), tuple(prefills))


@dataclass(frozen=True)
class TermBounds:
    """Lower bounds on the objective's parts (integer units of the cost; see the module docstring).

    Attributes:
        iterations: ``T`` (GPU time) or ``U = sum_r C_r`` (latency).
        prefill_charges: ``sum_t Q_t`` (GPU time) or ``sum_t u_t Q_t`` (latency).
        per_request: tokens, entries and prefill attention, in cost units.
        fixed_charges: the per-batch intercept and kernel constants with their multi-kernel factors, summed over the
            iterations (latency: each weighted by the unfinished requests), in cost units (0: not bounded separately).
        proven: whether the CP-SAT term solves (if any) proved their optima.
    """

    iterations: int
    prefill_charges: int
    per_request: int
    fixed_charges: int = 0
    proven: bool = True


def _per_request_costs(instance: ScheduleInstance, cost: IntegerLinearCost) -> list[int]:
    den = cost.mult_den
    out = []
    for r in range(instance.num_requests):
        prompt, output = instance.prompt_len[r], instance.output_len[r]
        chunks = math.ceil(prompt / instance.token_budget)
        contexts = (output - 1) * (prompt - 1) + output * (output - 1) // 2  # sum of I + g - 1, g = 1..O-1
        out.append(den * (cost.k_ao * (prompt + output - 1) + cost.k_sp * chunks
                          + min(cost.k_sd, cost.k_sp) * (output - 1) + cost.k_ap * prompt * prompt
                          + min(cost.k_ad, cost.k_ao) * contexts))
    return out


def closed_form_terms(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str) -> TermBounds:
    """:class:`TermBounds` from :func:`prefix_bounds` and the per-request amounts alone (no search)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be 'latency' or 'gpu_time', got {objective!r}")
    prefix = prefix_bounds(instance)
    per_request = _per_request_costs(instance, cost)
    prefill_charge = cost.mult_den * cost.k_bp
    if objective == "gpu_time":
        return TermBounds(prefix.iterations[-1], prefill_charge * prefix.prefill_iterations[-1], sum(per_request))
    # sum_t u_t x_t = sum_k (sum of x_t over the first C_(k) iterations); shortest-first for per-request amounts.
    return TermBounds(sum(prefix.iterations), prefill_charge * sum(prefix.prefill_iterations),
                      sum(_k_smallest_sums(per_request)))


def combine(terms: TermBounds, cost: IntegerLinearCost) -> int:
    """The objective bound from term bounds: ``per_request`` plus the larger of ``fixed_charges`` and
    ``den (k_bo + min(k_bd, k_bp)) iterations + (1 - k_bd / k_bp) prefill_charges`` (rounded down; the ``Q`` term only
    when ``k_bp > k_bd``), both lower bounds on the fixed charges (the per-request amounts use no fixed charge)."""
    return max(_counted_fixed_charges(terms, cost), terms.fixed_charges) + terms.per_request


def _counted_fixed_charges(terms: TermBounds, cost: IntegerLinearCost) -> int:
    den = cost.mult_den
    per_iteration = den * (cost.k_bo + min(cost.k_bd, cost.k_bp))
    prefill = (cost.k_bp - cost.k_bd) * terms.prefill_charges // cost.k_bp if cost.k_bp > cost.k_bd else 0
    return per_iteration * terms.iterations + prefill


def lower_bound(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str) -> int:
    """The closed-form lower bound on the optimal objective (integer cost units); no search, linear-logarithmic in
    the number of requests."""
    return combine(closed_form_terms(instance, cost, objective), cost)


def bound_cuts(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str) -> BoundCuts:
    """The closed-form counts and objective bound as :class:`~baselines.optimal.model.BoundCuts` for
    :class:`~baselines.optimal.model.ScheduleModel`."""
    prefix = prefix_bounds(instance)
    return BoundCuts(prefix.iterations[-1], prefix.prefill_iterations[-1], sum(prefix.iterations),
                     lower_bound(instance, cost, objective))


def _term_cost(cost: IntegerLinearCost, keep: str) -> IntegerLinearCost:
    """``cost`` with every coefficient but ``keep`` zeroed and ``keep`` set to 1 (the multi-kernel factor kept)."""
    zeros = {name: 0 for name in ("k_ao", "k_bo", "k_ad", "k_bd", "k_sd", "k_ap", "k_bp", "k_sp", "k_mp")}
    zeros[keep] = 1
    return replace(cost, **zeros)


def fixed_charge_cost(cost: IntegerLinearCost) -> IntegerLinearCost:
    """``cost`` keeping only the fixed charges (:data:`FIXED_CHARGES`: the per-batch intercept and the two kernel
    constants, with the multi-kernel factor), every other coefficient zeroed."""
    kept = {name: getattr(cost, name) if name in FIXED_CHARGES else 0
            for name in ("k_ao", "k_bo", "k_ad", "k_bd", "k_sd", "k_ap", "k_bp", "k_sp", "k_mp")}
    return replace(cost, **kept)


@dataclass(frozen=True)
class FixedChargeBound:
    """What :func:`fixed_charge_bound` found: the bound (cost units), whether it is the proven fixed-charge optimum,
    and the best schedule of the fixed-charge model (a real schedule, often a good one for the full cost too)."""

    bound: int
    proven: bool
    decisions: list[Decision]


def fixed_charge_bound(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str, horizon: int,
                       deadline: float, workers: int = 2, seed: int = 0) -> FixedChargeBound | None:
    """A lower bound on the fixed charges of every schedule of at most ``horizon`` iterations (cost units):
    CP-SAT's bound on the model with the cost :func:`fixed_charge_cost`, which carries the closed-form counts
    (:func:`prefix_bounds`) and their fixed-charge price as cuts, so its bound starts there. None when ``deadline`` (a
    :func:`time.perf_counter` value) passes before the search finds a schedule.

    With ``horizon`` at least the iterations of some optimal schedule of the full objective, the full optimum is at
    least this bound plus the per-request amounts of :func:`closed_form_terms` (:func:`combine` with
    ``fixed_charges``): the optimal schedule's fixed charges are at least the fixed-charge optimum over the horizon,
    and its remaining charges at least the per-request amounts, which no fixed charge contributes to."""
    fixed = fixed_charge_cost(cost)
    terms = closed_form_terms(instance, cost, objective)
    prefix = prefix_bounds(instance)
    counted = _counted_fixed_charges(terms, fixed)
    cuts = BoundCuts(prefix.iterations[-1], prefix.prefill_iterations[-1], sum(prefix.iterations), counted)
    solved = _solve_term(instance, fixed, objective, horizon, deadline, workers, seed, cuts)
    if solved is None:
        return None
    bound, proven, schedule, solver = solved
    return FixedChargeBound(bound, proven, schedule.decisions(solver))


def _solve_term(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str, horizon: int,
                deadline: float, workers: int, seed: int, cuts: BoundCuts | None = None
                ) -> tuple[int, bool, ScheduleModel, cp_model.CpSolver] | None:
    """The proven lower bound of the model with this cost, whether it is optimal, the model and the solver holding
    its best solution; None when time runs out before a solution."""
    try:
        schedule = ScheduleModel(instance, cost, objective, horizon, deadline=deadline, bound_cuts=cuts)
    except ModelBuildTimeout:
        return None
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return None
    solver = configured_solver(remaining, workers, seed)
    status = solver.solve(schedule.model)
    if status == cp_model.INFEASIBLE:
        raise ValueError(f"no schedule of {instance.num_requests} requests finishes within {horizon} iterations")
    if status == cp_model.UNKNOWN:
        return None
    return math.ceil(solver.best_objective_bound), status == cp_model.OPTIMAL, schedule, solver


def term_bounds(instance: ScheduleInstance, cost: IntegerLinearCost, objective: str, horizon: int,
                time_limit: float, workers: int = 2, seed: int = 0) -> TermBounds:
    """:func:`closed_form_terms` with CP-SAT's proven bounds on models that keep part of the cost: the fixed charges
    together (:func:`fixed_charge_bound`, within half of ``time_limit``), then the intercept alone (its objective is
    ``den T``, or ``den U`` for latency; raises ``iterations``) and the prefill-kernel constant alone
    (``sum_t (u_t) Q_t / k_bp``; raises ``prefill_charges``), within a quarter each.

    ``horizon`` must be at least the iterations of some optimal schedule of the full objective (for instance
    :func:`~baselines.optimal.solve.iteration_bound` of a known schedule): the term optimum over schedules of at
    most ``horizon`` iterations is then at most that schedule's term, so each term bound holds for the optimum."""
    started = time.perf_counter()
    fewest = max(instance.min_iterations(r) for r in range(instance.num_requests))
    if horizon < fewest:
        raise ValueError(f"no schedule of {instance.num_requests} requests finishes within {horizon} iterations (the "
                         f"longest request needs {fewest})")
    terms = closed_form_terms(instance, cost, objective)
    iterations, charges, fixed_charges, proven = terms.iterations, terms.prefill_charges, 0, True
    fixed = fixed_charge_bound(instance, cost, objective, horizon, started + time_limit / 2, workers, seed)
    if fixed is None:
        proven = False
    else:
        fixed_charges, proven = fixed.bound, fixed.proven
    intercept = _solve_term(instance, _term_cost(cost, "k_bo"), objective, horizon, started + 3 * time_limit / 4,
                            workers, seed)
    if intercept is None:
        proven = False
    else:
        iterations = max(iterations, math.ceil(intercept[0] / cost.mult_den))
        proven &= intercept[1]
    prefill = _solve_term(instance, _term_cost(cost, "k_bp"), objective, horizon, started + time_limit, workers,
                          seed)
    if prefill is None:
        proven = False
    else:
        charges = max(charges, cost.k_bp * prefill[0])
        proven &= prefill[1]
    return TermBounds(iterations, charges, terms.per_request, fixed_charges, proven)
