"""The CP-SAT model behind :func:`baselines.optimal.solve_optimal`: integer batch times and the schedule CSP.

The model is iteration-indexed in the spirit of INFERMAX: for every iteration ``t`` of a horizon of ``T`` and every
request ``r`` it holds the state before the iteration (``kv_in``: KV tokens held, ``generated``: tokens emitted) and
the decision (``evict``, ``tokens``) with the derived quantities the simulator computes (``kv_used``: KV after
eviction, ``runs``, ``emits``, ``decodes``). Every constraint mirrors a line of :meth:`Simulator.step`:

* ``need = I + generated - kv_used``; a running request computes ``1..need`` tokens; ``tokens == need`` emits.
* A request decodes when it has emitted a token and ``kv_in == I + generated - 1`` (``need == 1``), as
  :meth:`Simulator.is_decoding` says; its batch entry is then a decode, otherwise a prefill chunk.
* Eviction needs ``kv_in >= 1`` (the request is resident), sets ``kv_used = 0`` and excludes running in the same
  iteration; the lost tokens are recomputed through ``need``.
* Per iteration: ``sum(kv_used + tokens) <= M`` (finishing requests count their full ``I + O - 1``),
  ``sum(tokens) <= C``, ``#running <= max_batch_size``; a request finishing in ``t`` holds no KV after ``t``.
* Iterations run back to back while any request is unfinished and are empty afterwards (offline workloads).

With ``truncated_bound=B`` (a sound bound on the iterations of some optimal schedule, ``B > T``) the model is a
relaxation of the problem for *any* number of iterations: requests may still be unfinished after the last of the
``T`` modelled iterations, and the objective then adds a lower bound on the cost of finishing them
(:meth:`ScheduleModel.cost_to_go`). Every complete schedule, cut after ``T`` iterations, is a
solution of it costing no more, so its optimum bounds the true optimum from below; a solution that finishes every
request within ``T`` iterations is a real schedule at its true cost, so an optimal one that is complete is optimal
for every horizon.

Batch times are integers in units of ``IntegerLinearCost.unit_seconds`` (0.1 ns by default; see that class for
the rounding and its bound).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from itertools import combinations

from ortools.sat.python import cp_model

from infermax_env.batch import Batch
from infermax_env.cost.linear import MULTI_KERNEL_FACTOR, LinearCostModel
from infermax_env.metrics import Objective
from infermax_env.simulator import Decision

NANOSECOND = 1e-9
ALL_SUBSET_CUTS_UP_TO = 10
TWO_WORKER_SUBSOLVERS = ("max_lp",)


class ModelBuildTimeout(TimeoutError):
    """A :class:`ScheduleModel` was still being built when its ``deadline`` passed."""


@dataclass(frozen=True)
class IntegerLinearCost:
    """:class:`LinearCostModel` with every coefficient rounded to an integer number of ``coefficient_unit`` seconds.

    A batch's time is ``den * (K_ao N + K_bo) + attention`` where each attention kind contributes
    ``num * (K_a x + K_b)`` when the batch holds more than one request of that kind and ``den * (K_a x + K_b)`` when
    it holds one (``num / den`` = the multi-kernel factor 1.1 = 11/10), plus ``den * (K_s n + K_m sum m)``. The
    integer is in units of ``unit_seconds = coefficient_unit / den``.

    Rounding: each ``K = round(coefficient * layers * 1e-3 / coefficient_unit)`` is off by at most half a unit, so a
    batch time is off by at most ``coefficient_unit / 2`` times the multiplier-weighted sum of the batch's features
    (:meth:`rounding_bound`); with the default 1 ns unit and the paper's coefficients that is below 1e-5 of the batch time.
    """

    k_ao: int
    k_bo: int
    k_ad: int
    k_bd: int
    k_sd: int
    k_ap: int
    k_bp: int
    k_sp: int
    k_mp: int
    mult_num: int
    mult_den: int
    coefficient_unit: float

    @classmethod
    def from_cost_model(cls, cost_model: LinearCostModel, coefficient_unit: float = NANOSECOND,
                        round_down: bool = False) -> "IntegerLinearCost":
        """Round ``cost_model``'s coefficients to the nearest unit (``round_down``: down, so that every batch's
        integer time is at most its float time and bounds priced with it hold for the float objective); raises
        ``ValueError`` for a negative coefficient or a zero per-batch intercept (the iteration bound needs every batch
        to cost a positive integer)."""
        if not isinstance(cost_model, LinearCostModel):
            raise TypeError(f"the CP-SAT optimum encodes LinearCostModel only, got {type(cost_model).__name__}; "
                            f"other cost models have no exact integer encoding here")
        seconds_per_ms = cost_model.num_layers * 1e-3
        coefficients = asdict(cost_model.coefficients)
        rounded = {}
        for name, value in coefficients.items():
            if value < 0:
                raise ValueError(f"LinearCostModel coefficient {name} = {value} is negative; the CP-SAT model needs "
                                 f"non-negative coefficients")
            scaled = value * seconds_per_ms / coefficient_unit
            rounded["k_" + name.replace("_", "")] = math.floor(scaled) if round_down else round(scaled)
        if rounded["k_bo"] < 1:
            raise ValueError(f"LinearCostModel intercept b_o = {coefficients['b_o']} rounds to 0 units of "
                             f"{coefficient_unit} s; the iteration bound needs a positive per-batch cost")
        factor = Fraction(MULTI_KERNEL_FACTOR).limit_denominator(1000)
        return cls(**rounded, mult_num=factor.numerator, mult_den=factor.denominator,
                   coefficient_unit=coefficient_unit)

    @property
    def unit_seconds(self) -> float:
        """Seconds per integer time unit."""
        return self.coefficient_unit / self.mult_den

    def _multiplier(self, count: int) -> int:
        return 0 if count == 0 else (self.mult_den if count == 1 else self.mult_num)

    @staticmethod
    def _batch_sums(batch: Batch) -> tuple[int, int, int, int, int, int]:
        """(tokens, decodes, prefills, decode context total, sum of c * (c + 2m), cached total) as Python ints."""
        c, m = batch.prefill_new.tolist(), batch.prefill_cached.tolist()
        context = batch.decode_context.tolist()
        quad = sum(ci * (ci + 2 * mi) for ci, mi in zip(c, m))
        return sum(c) + len(context), len(context), len(c), sum(context), quad, sum(m)

    def batch_time(self, batch: Batch) -> int:
        """The integer time of ``batch``, the exact value the CP-SAT model assigns to it."""
        n_tokens, n_dec, n_pre, context, quad, cached = self._batch_sums(batch)
        if n_tokens == 0:
            return 0
        time = self.mult_den * (self.k_ao * n_tokens + self.k_bo + self.k_sd * n_dec + self.k_sp * n_pre
                                + self.k_mp * cached)
        if n_dec:
            time += self._multiplier(n_dec) * (self.k_ad * context + self.k_bd)
        if n_pre:
            time += self._multiplier(n_pre) * (self.k_ap * quad + self.k_bp)
        return time

    def rounding_bound(self, batch: Batch) -> float:
        """Seconds by which :meth:`batch_time` x ``unit_seconds`` may differ from the float model on ``batch``."""
        n_tokens, n_dec, n_pre, context, quad, cached = self._batch_sums(batch)
        if n_tokens == 0:
            return 0.0
        weight = n_tokens + 1 + n_dec + n_pre + cached
        if n_dec:
            weight += self._multiplier(n_dec) / self.mult_den * (context + 1)
        if n_pre:
            weight += self._multiplier(n_pre) / self.mult_den * (quad + 1)
        return 0.5 * self.coefficient_unit * weight

    def min_prefill_batch_time(self) -> int:
        """A lower bound on the integer time of any batch that holds a prefill chunk (one token, no cache)."""
        return self.mult_den * (self.k_ao + self.k_bo + self.k_sp + self.k_ap + self.k_bp)

    def min_batch_time(self) -> int:
        """A lower bound on the integer time of any non-empty batch (one token, one request, no context)."""
        den = self.mult_den
        cheapest_attention = min(self.k_bd + self.k_sd, self.k_ap + self.k_bp + self.k_sp)
        return den * (self.k_ao + self.k_bo + cheapest_attention)


@dataclass(frozen=True)
class BoundCuts:
    """Lower bounds, valid for every complete schedule of an instance, that :class:`ScheduleModel` adds as cuts:
    iterations, iterations holding a prefill chunk, the sum over requests of the iterations each stays unfinished,
    and the objective (integer units)."""

    iterations: int
    prefill_iterations: int
    completions: int
    objective: int


def full_continuations_hold(cost: "IntegerLinearCost", instance: "ScheduleInstance") -> bool:
    """Whether moving a token from a request's earlier prefill chunk into its later one is strictly cheaper under
    ``cost`` for every chunk of ``instance`` (see :meth:`ScheduleModel._add_full_continuations`): the cached-token
    saving ``den k_mp`` exceeds the largest multi-kernel attention excess ``(num - den) k_ap (2 m - 1)``, ``m`` up
    to ``I + O - 3``."""
    most_cached = max(p + o for p, o in zip(instance.prompt_len, instance.output_len)) - 3
    excess = (cost.mult_num - cost.mult_den) * cost.k_ap * max(2 * most_cached - 1, 0)
    return cost.mult_den * cost.k_mp > excess


@dataclass(frozen=True)
class ScheduleInstance:
    """An offline instance in plain integers: prompt and output lengths and the engine limits."""

    prompt_len: tuple[int, ...]
    output_len: tuple[int, ...]
    kv_capacity: int
    token_budget: int
    max_batch_size: int

    @property
    def num_requests(self) -> int:
        return len(self.prompt_len)

    def min_iterations(self, r: int) -> int:
        """Fewest iterations request ``r`` can finish in: its prompt in chunks of at most C, then O - 1 decodes."""
        return math.ceil(self.prompt_len[r] / self.token_budget) + self.output_len[r] - 1

    def kv_area(self, r: int) -> int:
        """KV tokens held summed over the iterations that emit ``r``'s tokens: ``I O + O (O - 1) / 2``."""
        prompt, output = self.prompt_len[r], self.output_len[r]
        return prompt * output + output * (output - 1) // 2

    def identical_groups(self) -> list[list[int]]:
        """Groups (size >= 2) of requests with equal prompt and output lengths."""
        groups: dict[tuple[int, int], list[int]] = {}
        for r, key in enumerate(zip(self.prompt_len, self.output_len)):
            groups.setdefault(key, []).append(r)
        return [group for group in groups.values() if len(group) > 1]


class ScheduleModel:
    """The CP-SAT model of serving ``instance`` in at most ``horizon`` iterations, minimising ``objective``.

    Attribute arrays are indexed ``[t][r]``; ``time[t]`` is the integer batch time of iteration ``t``. Variables are
    created in a fixed order, so two models built with the same arguments have the same variable indices (the hint
    completion relies on it). With ``deadline`` (a :func:`time.perf_counter` value) building checks the clock once per
    iteration and per cut and raises :class:`ModelBuildTimeout` when it has passed.

    Optional constraints, each sound (some optimal schedule satisfies them all; the arguments are in the methods'
    docstrings and ``docs/optimal.md``): ``evict_after_emission`` (:meth:`_add_eviction_after_emission`),
    ``full_continuations`` (:meth:`_add_full_continuations`, added only when :func:`full_continuations_hold` for
    the cost and instance) and ``bound_cuts`` (:meth:`_add_bound_cuts`, complete models only; from
    :func:`baselines.optimal.bounds.bound_cuts`).
    """

    def __init__(self, instance: ScheduleInstance, cost: IntegerLinearCost, objective: str, horizon: int, *,
                 allow_eviction: bool = True, symmetry_breaking: bool = True, truncated_bound: int | None = None,
                 deadline: float | None = None, evict_after_emission: bool = False, full_continuations: bool = False,
                 bound_cuts: "BoundCuts | None" = None):
        Objective.parse(objective)
        if truncated_bound is not None and truncated_bound <= horizon:
            raise ValueError(f"truncated_bound {truncated_bound} must exceed the horizon {horizon}")
        self.instance = instance
        self.cost = cost
        self.objective_name = objective
        self.horizon = horizon
        self.truncated_bound = truncated_bound
        self.truncated = truncated_bound is not None
        self.model = cp_model.CpModel()
        self._deadline = deadline
        self._add_request_state()
        self._add_eviction(allow_eviction)
        self._add_token_accounting()
        self._add_decode_phase()
        self._add_engine_limits()
        self._add_batch_time()
        self._add_objective()
        if not self.truncated:
            self._add_progress_bounds()
        self._add_energy_bounds()
        self._add_early_eviction()
        if evict_after_emission:
            self._add_eviction_after_emission()
        if full_continuations and full_continuations_hold(cost, instance):
            self._add_full_continuations()
        if bound_cuts is not None and not self.truncated:
            self._add_bound_cuts(bound_cuts)
        if symmetry_breaking:
            self._add_symmetry_breaking()
        self._deadline = None  # built: reading solutions never times out

    # ---- variables and constraints -----------------------------------------------------------------------
    def _requests(self) -> range:
        return range(self.instance.num_requests)

    def _check_clock(self) -> None:
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise ModelBuildTimeout(f"the deadline passed while building the {self.horizon}-iteration model of "
                                    f"{self.instance.num_requests} requests")

    def _iterations(self) -> Iterator[int]:
        for t in range(self.horizon):
            self._check_clock()
            yield t

    def _add_request_state(self) -> None:
        """State before each iteration (and after the last): KV held, tokens emitted, still unfinished.

        ``generated[t][r] <= t - ceil(I / C) + 1`` (a request emits at most one token per iteration, the first after
        its whole prompt) tightens the domains; the final state has every request finished unless the model is
        truncated.
        """
        model, inst = self.model, self.instance
        self.kv_in, self.generated, self.alive, self.has_token = [], [], [], []
        for t in range(self.horizon + 1):
            self._check_clock()
            kv_row, gen_row, alive_row, token_row = [], [], [], []
            for r in self._requests():
                prompt, output = inst.prompt_len[r], inst.output_len[r]
                earliest = max(0, t - math.ceil(prompt / inst.token_budget) + 1)
                last = t == self.horizon and not self.truncated
                max_generated = min(output, earliest)
                kv_top = 0 if (t == 0 or last) else prompt + output - 2
                kv_row.append(model.new_int_var(0, kv_top, f"kv_in[{t},{r}]"))
                generated = model.new_int_var(output if last else 0, max_generated, f"generated[{t},{r}]")
                alive = model.new_bool_var(f"alive[{t},{r}]")
                has_token = model.new_bool_var(f"has_token[{t},{r}]")
                # alive <=> generated <= O - 1; has_token <=> generated >= 1 (generated is in [0, O]).
                model.add(generated <= output - alive)
                model.add(generated >= output * (1 - alive))
                model.add(generated >= has_token)
                model.add(generated <= output * has_token)
                gen_row.append(generated)
                alive_row.append(alive)
                token_row.append(has_token)
            self.kv_in.append(kv_row)
            self.generated.append(gen_row)
            self.alive.append(alive_row)
            self.has_token.append(token_row)
        for t in self._iterations():
            for r in self._requests():
                model.add_implication(self.alive[t + 1][r], self.alive[t][r])

    def _add_eviction(self, allow_eviction: bool) -> None:
        """``evict`` drops the KV before the iteration's compute: ``kv_used = 0 if evict else kv_in``. Only a
        resident (KV-holding) request may be evicted."""
        model, inst = self.model, self.instance
        self.evict, self.kv_used = [], []
        for t in self._iterations():
            evict_row, used_row = [], []
            for r in self._requests():
                top = inst.prompt_len[r] + inst.output_len[r] - 2
                evict = model.new_bool_var(f"evict[{t},{r}]")
                kv_used = model.new_int_var(0, top, f"kv_used[{t},{r}]")
                kv_in = self.kv_in[t][r]
                if not allow_eviction or t == 0:
                    model.add(evict == 0)
                model.add(kv_in >= evict)
                model.add(kv_used <= kv_in)
                model.add(kv_used >= kv_in - top * evict)
                model.add(kv_used <= top * (1 - evict))
                evict_row.append(evict)
                used_row.append(kv_used)
            self.evict.append(evict_row)
            self.kv_used.append(used_row)

    def _add_token_accounting(self) -> None:
        """Chunks, emissions and the next state: ``1 <= tokens <= need`` when running, ``emits <=> tokens == need``,
        ``generated' = generated + emits``, ``kv_in' = kv_used + tokens`` (0 once the request finishes)."""
        model, inst = self.model, self.instance
        self.tokens, self.runs, self.emits, self.kv_peak = [], [], [], []
        for t in self._iterations():
            token_row, run_row, emit_row, peak_row = [], [], [], []
            for r in self._requests():
                prompt, output = inst.prompt_len[r], inst.output_len[r]
                full = prompt + output - 1
                tokens = model.new_int_var(0, min(inst.token_budget, full), f"tokens[{t},{r}]")
                runs = model.new_bool_var(f"runs[{t},{r}]")
                emits = model.new_bool_var(f"emits[{t},{r}]")
                kv_peak = model.new_int_var(0, full, f"kv_peak[{t},{r}]")
                need = prompt + self.generated[t][r] - self.kv_used[t][r]
                model.add(tokens >= runs)
                model.add(tokens <= min(inst.token_budget, full) * runs)
                model.add(tokens <= need)
                model.add(tokens == need).only_enforce_if(emits)
                model.add(tokens <= need - 1).only_enforce_if(~emits)
                model.add_implication(runs, self.alive[t][r])
                model.add(runs + self.evict[t][r] <= 1)
                model.add(emits <= runs)
                model.add(self.generated[t + 1][r] == self.generated[t][r] + emits)
                model.add(kv_peak == self.kv_used[t][r] + tokens)
                finishes = self.alive[t][r] - self.alive[t + 1][r]
                model.add(self.kv_in[t + 1][r] == kv_peak - full * finishes)
                token_row.append(tokens)
                run_row.append(runs)
                emit_row.append(emits)
                peak_row.append(kv_peak)
            self.tokens.append(token_row)
            self.runs.append(run_row)
            self.emits.append(emit_row)
            self.kv_peak.append(peak_row)

    def _add_decode_phase(self) -> None:
        """``decodes = runs and has_token and kv_in == I + generated - 1`` (the simulator's decode test), and the
        per-request batch entries the cost needs: a decode's context and a running request's cached KV."""
        model, inst = self.model, self.instance
        self.decodes, self.decode_context, self.running_cached = [], [], []
        for t in self._iterations():
            decode_row, context_row, cached_row = [], [], []
            for r in self._requests():
                prompt, output = inst.prompt_len[r], inst.output_len[r]
                top = prompt + output - 2
                kv_in, generated = self.kv_in[t][r], self.generated[t][r]
                full_context = model.new_bool_var(f"full_context[{t},{r}]")
                model.add(kv_in == prompt + generated - 1).only_enforce_if(full_context)
                model.add(kv_in <= prompt + generated - 2).only_enforce_if(~full_context)
                decodes = model.new_bool_var(f"decodes[{t},{r}]")
                model.add_bool_and([self.runs[t][r], self.has_token[t][r], full_context]).only_enforce_if(decodes)
                model.add_bool_or([~self.runs[t][r], ~self.has_token[t][r], ~full_context, decodes])
                decode_row.append(decodes)
                context_row.append(self._masked_copy(self.kv_used[t][r], decodes, top, f"decode_context[{t},{r}]"))
                cached_row.append(self._masked_copy(self.kv_used[t][r], self.runs[t][r], top, f"running_cached[{t},{r}]"))
            self.decodes.append(decode_row)
            self.decode_context.append(context_row)
            self.running_cached.append(cached_row)

    def _masked_copy(self, value: cp_model.IntVar, flag: cp_model.IntVar, top: int, name: str) -> cp_model.IntVar:
        """A variable equal to ``value`` when ``flag`` and 0 otherwise (``0 <= value <= top``)."""
        copy = self.model.new_int_var(0, top, name)
        self.model.add(copy <= value)
        self.model.add(copy <= top * flag)
        self.model.add(copy >= value - top * (1 - flag))
        return copy

    def _add_engine_limits(self) -> None:
        """Per iteration: KV after evictions plus new tokens <= M, tokens <= C, running requests <= max batch size;
        an iteration runs something exactly while some request is unfinished."""
        model, inst = self.model, self.instance
        self.active = []
        for t in self._iterations():
            model.add(sum(self.kv_peak[t]) <= inst.kv_capacity)
            model.add(sum(self.tokens[t]) <= inst.token_budget)
            model.add(sum(self.runs[t]) <= inst.max_batch_size)
            active = model.new_bool_var(f"active[{t}]")
            for r in self._requests():
                model.add_implication(self.alive[t][r], active)
            model.add(sum(self.alive[t]) >= active)
            model.add(sum(self.runs[t]) >= active)
            self.active.append(active)
        for t in range(self.horizon - 1):
            model.add_implication(self.active[t + 1], self.active[t])

    def _count_flags(self, count, upper: int, name: str) -> tuple[cp_model.IntVar, cp_model.IntVar]:
        """Booleans ``count >= 1`` and ``count >= 2`` for an integer expression ``0 <= count <= upper``."""
        any_flag = self.model.new_bool_var(f"{name}>=1")
        many_flag = self.model.new_bool_var(f"{name}>=2")
        self.model.add(count >= any_flag)
        self.model.add(count <= upper * any_flag)
        self.model.add(count >= 2 * many_flag)
        self.model.add(count <= 1 + upper * many_flag)
        return any_flag, many_flag

    def _square(self, value: cp_model.IntVar, top: int, name: str) -> cp_model.IntVar:
        square = self.model.new_int_var(0, top * top, name)
        self.model.add_multiplication_equality(square, [value, value])
        return square

    def _add_batch_time(self) -> None:
        """``time[t]`` = the integer cost (see :class:`IntegerLinearCost`) of iteration ``t``'s batch.

        The prefill attention term ``sum c (c + 2 m)`` over prefill chunks is ``sum (m + c)^2 - m^2`` over all
        requests (zero for those not running) minus ``2 m + 1`` for each decode; the multi-kernel factor applies
        through a variable equal to the attention base when two or more requests of that kind run.
        """
        model, inst, k = self.model, self.instance, self.cost
        n = inst.num_requests
        den, extra = k.mult_den, k.mult_num - k.mult_den
        full = [inst.prompt_len[r] + inst.output_len[r] - 1 for r in self._requests()]
        max_context = sum(f - 1 for f in full)
        max_quad = sum(f * f for f in full)
        max_tokens = min(inst.token_budget, sum(full))
        self.time_upper = (den * (k.k_ao * max_tokens + k.k_bo + k.k_sd * n + k.k_sp * n + k.k_mp * max_context)
                           + k.mult_num * (k.k_ad * max_context + k.k_bd + k.k_ap * max_quad + k.k_bp))
        self.time, self.has_prefill = [], []
        for t in self._iterations():
            n_dec = sum(self.decodes[t])
            n_pre = sum(self.runs[t]) - n_dec
            has_dec, multi_dec = self._count_flags(n_dec, n, f"decodes[{t}]")
            has_pre, multi_pre = self._count_flags(n_pre, n, f"prefills[{t}]")
            context = sum(self.decode_context[t])
            squares = sum(self._square(self.kv_peak[t][r], full[r], f"peak_sq[{t},{r}]")
                          - self._square(self.kv_used[t][r], full[r] - 1, f"used_sq[{t},{r}]") for r in self._requests())
            quad = squares - 2 * context - n_dec
            cached = sum(self.running_cached[t]) - context
            decode_base = k.k_ad * context + k.k_bd * has_dec
            prefill_base = k.k_ap * quad + k.k_bp * has_pre
            decode_extra = model.new_int_var(0, k.k_ad * max_context + k.k_bd, f"decode_extra[{t}]")
            model.add(decode_extra == decode_base).only_enforce_if(multi_dec)
            model.add(decode_extra == 0).only_enforce_if(~multi_dec)
            prefill_extra = model.new_int_var(0, k.k_ap * max_quad + k.k_bp, f"prefill_extra[{t}]")
            model.add(prefill_extra == prefill_base).only_enforce_if(multi_pre)
            model.add(prefill_extra == 0).only_enforce_if(~multi_pre)
            time = model.new_int_var(0, self.time_upper, f"time[{t}]")
            model.add(time == den * (k.k_ao * sum(self.tokens[t]) + k.k_bo * self.active[t] + decode_base
                                     + k.k_sd * n_dec + prefill_base + k.k_sp * n_pre + k.k_mp * cached)
                      + extra * (decode_extra + prefill_extra))
            model.add(time >= k.min_batch_time() * self.active[t])
            self._add_batch_kind_cuts(t, has_dec, has_pre, time)
            self.time.append(time)
            self.has_prefill.append(has_pre)

    def _add_batch_kind_cuts(self, t: int, has_dec: cp_model.IntVar, has_pre: cp_model.IntVar,
                             time: cp_model.IntVar) -> None:
        """Redundant, for the LP: a decoding (prefilling) request makes ``has_dec`` (``has_pre``) true, prefill
        chunks total at most ``C * has_pre`` tokens, and a batch pays at least the fixed terms of each kind it holds
        (``den (k_bd + k_sd)`` for decodes, ``den (k_ap + k_bp + k_sp)`` for prefill chunks: a chunk has ``c >= 1``)
        on top of its per-batch and per-token linear terms."""
        model, k = self.model, self.cost
        for r in self._requests():
            model.add(has_dec >= self.decodes[t][r])
            model.add(has_pre >= self.runs[t][r] - self.decodes[t][r])
        prefill_tokens = sum(self.tokens[t][r] - self.decodes[t][r] for r in self._requests())
        model.add(prefill_tokens <= self.instance.token_budget * has_pre)
        model.add(time >= k.mult_den * (k.k_bo * self.active[t] + k.k_ao * sum(self.tokens[t])
                                        + (k.k_bd + k.k_sd) * has_dec + (k.k_ap + k.k_bp + k.k_sp) * has_pre))

    def _add_objective(self) -> None:
        """``gpu_time``: the sum of batch times. ``latency``: the sum of TTLT (all requests arrive at time 0), see
        :meth:`_add_latency_parts`. A truncated model adds :meth:`cost_to_go`."""
        if self.objective_name == "gpu_time":
            self.objective = sum(self.time)
        else:
            self._add_latency_parts()
            self.objective = sum(sum(row) for row in self.latency_part)
        if self.truncated:
            self.objective += self.cost_to_go()
        if self.objective_name == "latency":
            self._add_completion_cuts()
        self.model.minimize(self.objective)

    def _add_latency_parts(self) -> None:
        """``latency_part[t][r]`` = ``time[t]`` while ``r`` is unfinished before iteration ``t``, else 0: the TTLT of
        ``r`` is the sum of its parts. Linear cuts for the LP: a part is at least ``t_min`` while ``r`` is
        unfinished, and at least ``t_prefill`` when ``r`` itself or any request runs a prefill chunk
        (:meth:`IntegerLinearCost.min_batch_time`, :meth:`~IntegerLinearCost.min_prefill_batch_time`); the parts of
        an iteration sum to at least ``time + t_min (unfinished - 1)`` (McCormick)."""
        model = self.model
        t_min, t_prefill = self.cost.min_batch_time(), self.cost.min_prefill_batch_time()
        self.latency_part = []
        for t in self._iterations():
            row = []
            for r in self._requests():
                alive = self.alive[t][r]
                part = model.new_int_var(0, self.time_upper, f"latency_part[{t},{r}]")
                model.add(part == self.time[t]).only_enforce_if(alive)
                model.add(part == 0).only_enforce_if(~alive)
                own_prefill = self.runs[t][r] - self.decodes[t][r]
                model.add(part >= t_min * alive + (t_prefill - t_min) * own_prefill)
                model.add(part >= t_prefill * (alive + self.has_prefill[t] - 1))
                row.append(part)
            model.add(sum(row) >= self.time[t] + t_min * (sum(self.alive[t]) - 1))
            self.latency_part.append(row)

    def _completion_iterations(self) -> list[cp_model.IntVar]:
        """Per request, a variable equal to the iterations it stays unfinished (its completion, counted in
        iterations), the iterations after the horizon included in a truncated model."""
        completion = []
        for r in self._requests():
            top = self.horizon + (self.truncated_bound - self.horizon if self.truncated else 0)
            count = self.model.new_int_var(0, top, f"completion[{r}]")
            alive = sum(self.alive[t][r] for t in self._iterations())
            self.model.add(count == (alive + self.after_horizon[r] if self.truncated else alive))
            completion.append(count)
        return completion

    def _completion_cut_sets(self) -> list[tuple[int, ...]]:
        """Every non-empty subset of requests up to ``ALL_SUBSET_CUTS_UP_TO`` requests; beyond, the singletons, the
        pairs and the prefixes of the requests ordered by KV area (the sets the shortest-first optima make tight)."""
        inst = self.instance
        requests = list(self._requests())
        if inst.num_requests <= ALL_SUBSET_CUTS_UP_TO:
            return [s for size in range(1, len(requests) + 1) for s in combinations(requests, size)]
        by_area = sorted(requests, key=inst.kv_area)
        prefixes = [tuple(sorted(by_area[:size])) for size in range(3, len(requests) + 1)]
        return [(r,) for r in requests] + list(combinations(requests, 2)) + prefixes

    def _add_completion_cuts(self) -> None:
        """Redundant, for the LP (Queyranne-style, memory as the machine): the iteration emitting token ``g`` of
        ``r`` holds ``I + g`` KV tokens, at most ``M`` in all per iteration. For a set ``S`` of requests with KV area
        ``A = sum a_r`` (``a_r`` = :meth:`ScheduleInstance.kv_area`), packing that area into the earliest
        iterations and adding the ``O - 1 - g`` iterations each token still needs after it gives
        ``2 sum_S a_r C_r >= M k^2 + rho (2 k + 1) + sum_S sum_g (I + g)(2 (O - 1 - g) + 1)`` with
        ``k, rho = divmod(A, M)`` and ``C_r`` the iterations ``r`` stays unfinished."""
        inst, model = self.instance, self.model
        completion = self._completion_iterations()
        area = [inst.kv_area(r) for r in self._requests()]
        tail = [sum((inst.prompt_len[r] + g) * (2 * (inst.output_len[r] - 1 - g) + 1)
                    for g in range(inst.output_len[r])) for r in self._requests()]
        for subset in self._completion_cut_sets():
            self._check_clock()
            full, rest = divmod(sum(area[r] for r in subset), inst.kv_capacity)
            packed = inst.kv_capacity * full * full + rest * (2 * full + 1)
            model.add(2 * sum(area[r] * completion[r] for r in subset) >= packed + sum(tail[r] for r in subset))

    def cost_to_go(self) -> cp_model.LinearExpr:
        """A lower bound on the cost of the iterations after the horizon. A request that has emitted ``g`` of its
        ``O`` tokens runs for at least ``O - g`` more iterations (one token per iteration), each costing at least
        ``t_min``; one that is not ready to decode (``kv < I + g - 1`` or no token yet) runs a prefill chunk in one
        of them, which costs at least ``t_prefill`` (:meth:`IntegerLinearCost.min_prefill_batch_time`).
        Latency: ``t_min`` per iteration each request stays unfinished after the horizon (``after_horizon[r]``, at
        least ``O - g``, at most ``truncated_bound - T``), plus the prefill excess per pending prefill. GPU time:
        ``t_min`` times the longest remainder, plus the prefill excess once if any request needs a prefill."""
        inst, model = self.instance, self.model
        t_min = self.cost.min_batch_time()
        prefill_excess = self.cost.min_prefill_batch_time() - t_min
        last, beyond = self.horizon, self.truncated_bound - self.horizon
        remaining, pending = [], []
        for r in self._requests():
            remaining.append(inst.output_len[r] - self.generated[last][r])
            ready = model.new_bool_var(f"decode_ready[{last},{r}]")
            model.add(self.kv_in[last][r] == inst.prompt_len[r] + self.generated[last][r] - 1).only_enforce_if(ready)
            model.add_implication(ready, self.has_token[last][r])
            prefill = model.new_bool_var(f"pending_prefill[{last},{r}]")
            model.add(prefill >= self.alive[last][r] - ready)
            pending.append(prefill)
        if self.objective_name == "latency":
            self.after_horizon = []
            for r in self._requests():
                after = model.new_int_var(0, beyond, f"after_horizon[{r}]")
                model.add(after >= remaining[r])
                model.add(after <= beyond * self.alive[last][r])
                self.after_horizon.append(after)
            return t_min * sum(self.after_horizon) + prefill_excess * sum(pending)
        longest = model.new_int_var(0, max(inst.output_len), "remaining_iterations")
        model.add_max_equality(longest, remaining)
        any_prefill = model.new_bool_var("any_pending_prefill")
        model.add_max_equality(any_prefill, pending)
        return t_min * longest + prefill_excess * any_prefill

    def _add_progress_bounds(self) -> None:
        """Redundant: a request that has emitted ``g`` of its ``O`` tokens stays unfinished for at least ``O - g``
        more iterations (one token per iteration)."""
        model, inst = self.model, self.instance
        for t in self._iterations():
            for r in self._requests():
                remaining_alive = sum(self.alive[s][r] for s in range(t, self.horizon))
                model.add(remaining_alive >= inst.output_len[r] - self.generated[t][r])

    def _add_energy_bounds(self) -> None:
        """Redundant: the emission of a request's ``(g+1)``-th token happens in an iteration where it holds
        ``I + g`` KV tokens, so by the end of iteration ``t`` its KV summed over iterations is at least
        ``I * generated[t+1]``, and at least :meth:`ScheduleInstance.kv_area` once it has finished. Summed over
        requests this is bounded by ``M`` per iteration (a memory energy cut), and the tokens computed by ``C`` per
        iteration."""
        model, inst = self.model, self.instance
        for r in self._requests():
            prompt, output = inst.prompt_len[r], inst.output_len[r]
            finished_area = inst.kv_area(r)
            kv_area, computed = 0, 0
            for t in self._iterations():
                kv_area += self.kv_peak[t][r]
                computed += self.tokens[t][r]
                finished = 1 - self.alive[t + 1][r]
                model.add(kv_area >= prompt * self.generated[t + 1][r])
                model.add(kv_area >= finished_area * finished)
                model.add(computed >= (prompt + output - 1) * finished)
        for t in self._iterations():
            finished_area = sum(inst.kv_area(r) * (1 - self.alive[t + 1][r]) for r in self._requests())
            model.add(finished_area <= inst.kv_capacity * (t + 1))
            finished_tokens = sum((inst.prompt_len[r] + inst.output_len[r] - 1) * (1 - self.alive[t + 1][r])
                                  for r in self._requests())
            model.add(finished_tokens <= inst.token_budget * (t + 1))

    def _add_early_eviction(self) -> None:
        """Dominance: a request evicted in iteration ``t`` ran in ``t - 1``. Evicting an idle resident request one
        iteration earlier only frees memory sooner and changes no batch, so some optimal schedule has this form."""
        for t in range(1, self.horizon):
            for r in self._requests():
                self.model.add_implication(self.evict[t][r], self.runs[t - 1][r])

    def _add_eviction_after_emission(self) -> None:
        """Dominance: a request evicted in iteration ``t`` emitted a token in ``t - 1``. If it ran a chunk that emitted
        nothing, the eviction discards that chunk: dropping the chunk (and the iteration, if it empties) and evicting
        one iteration earlier costs strictly less (every coefficient is non-negative, the per-token one positive); if
        it idled, evicting earlier changes no batch (:meth:`_add_early_eviction`). An optimal schedule that is
        cheapest and then has the earliest evictions therefore satisfies this and every other rule here."""
        for t in range(1, self.horizon):
            for r in self._requests():
                self.model.add_implication(self.evict[t][r], self.emits[t - 1][r])

    def _add_full_continuations(self) -> None:
        """Dominance: an iteration running a prefill chunk of a request that already holds KV (``kv_used >= 1``, a
        prompt or recomputation continued from an earlier chunk) computes exactly ``C`` tokens.

        Otherwise move one token of that request's previous chunk (at ``t' < t``, which emitted nothing) into ``t``:
        memory at ``t`` is unchanged and lower in between, the chunks' attention sum ``sum c (c + 2m)`` is unchanged
        (it telescopes), the cached-token charge at ``t`` falls by ``den k_mp``, a token moves to an iteration with no
        more unfinished requests, and a chunk of one token disappears (dropping its entry, maybe its iteration). The
        only charge that can grow is the attention's multi-kernel excess, by at most
        ``(num - den) k_ap (2 m - 1)`` for ``m`` cached tokens; :func:`full_continuations_hold` checks it is below
        ``den k_mp``, so the move is strictly cheaper and no optimal schedule breaks the rule."""
        model, budget = self.model, self.instance.token_budget
        for t in self._iterations():
            total = sum(self.tokens[t])
            for r in self._requests():
                top = self.instance.prompt_len[r] + self.instance.output_len[r] - 2
                cached = model.new_bool_var(f"continues[{t},{r}]")
                model.add(self.kv_used[t][r] >= cached)
                model.add(self.kv_used[t][r] <= top * cached)
                model.add(total == budget).only_enforce_if([self.runs[t][r], cached, ~self.decodes[t][r]])

    def _add_bound_cuts(self, cuts: "BoundCuts") -> None:
        """Redundant for complete models: lower bounds on the iterations, the prefill iterations, the sum of
        completions (in iterations) and the objective, each holding for every complete schedule."""
        model = self.model
        model.add(sum(self.active) >= cuts.iterations)
        model.add(sum(self.has_prefill) >= cuts.prefill_iterations)
        model.add(sum(sum(row) for row in self.alive[:self.horizon]) >= cuts.completions)
        model.add(self.objective >= cuts.objective)

    def _add_symmetry_breaking(self) -> None:
        """Requests with equal prompt and output lengths are interchangeable: relabelling makes the lower-numbered
        one finish no later (``alive[t][a] <= alive[t][b]`` for ``a < b`` in a group)."""
        for group in self.instance.identical_groups():
            for a, b in zip(group, group[1:]):
                for t in range(self.horizon + 1):
                    self.model.add_implication(self.alive[t][a], self.alive[t][b])

    # ---- using the model ---------------------------------------------------------------------------------
    def is_complete(self, solution: cp_model.CpSolver | cp_model.CpSolverSolutionCallback) -> bool:
        """Whether ``solution`` finishes every request within the horizon (always true unless truncated)."""
        return not any(solution.boolean_value(alive) for alive in self.alive[self.horizon])

    def fix_decisions(self, decisions: list[Decision]) -> None:
        """Constrain the model to replay ``decisions`` (and to idle afterwards)."""
        if len(decisions) > self.horizon:
            raise ValueError(f"{len(decisions)} decisions do not fit the horizon of {self.horizon} iterations")
        for t in self._iterations():
            tokens = dict(zip(decisions[t].run_ids.tolist(), decisions[t].run_tokens.tolist())) \
                if t < len(decisions) else {}
            evicted = set(decisions[t].evict_ids.tolist()) if t < len(decisions) else set()
            for r in self._requests():
                self.model.add(self.tokens[t][r] == tokens.get(r, 0))
                self.model.add(self.evict[t][r] == int(r in evicted))

    def decisions(self, solver: cp_model.CpSolver | cp_model.CpSolverSolutionCallback) -> list[Decision]:
        """The schedule of the solver's best solution (or of the solution a callback sees), one :class:`Decision`
        per non-empty iteration."""
        schedule = []
        for t in self._iterations():
            if not solver.boolean_value(self.active[t]):
                break
            run = {r: solver.value(self.tokens[t][r]) for r in self._requests() if solver.value(self.tokens[t][r])}
            evict = [r for r in self._requests() if solver.boolean_value(self.evict[t][r])]
            schedule.append(Decision.from_dict(run, evict))
        return schedule


def configured_solver(time_limit: float, workers: int, seed: int, log: bool = False,
                      extra: Mapping[str, object] | None = None) -> cp_model.CpSolver:
    """CP-SAT with explicit time limit, workers and seed. With two workers CP-SAT runs one full-problem subsolver
    beside the first-solution and interleaved LNS workers; here it is ``max_lp`` (the strongest LP relaxation, which
    carries the cuts of :class:`ScheduleModel` into the bound). The default portfolio's single full subsolver at two
    workers is ``no_lp``, whose bound never leaves the initial domain on these models. ``extra``: further
    ``SatParameters`` fields by name (overriding these)."""
    solver = cp_model.CpSolver()
    if workers == 2 and "subsolvers" not in (extra or {}):
        solver.parameters.subsolvers.extend(TWO_WORKER_SUBSOLVERS)
    solver.parameters.max_time_in_seconds = max(time_limit, 0.01)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    solver.parameters.log_search_progress = log
    for name, value in (extra or {}).items():
        if isinstance(value, (list, tuple)):
            getattr(solver.parameters, name).extend(value)
        else:
            setattr(solver.parameters, name, value)
    return solver
