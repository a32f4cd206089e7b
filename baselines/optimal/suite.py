"""A benchmark suite of offline scheduling instances with stored best-known schedules and proven bounds.

Named families (:data:`FAMILIES`) in the spirit of job-shop's Taillard sets: each instance is stored in
``baselines/optimal/suite_data/<family>.json`` with, per objective, its best-known schedule (one decision per
iteration), that schedule's objective, the best proven lower bound, whether the optimum is proven, and the solver
settings, machine and time that produced them. ``benchmarks/optimal_suite.py`` computes and improves the entries;
:func:`evaluate` scores any policy (a scheduler, or an env policy) on a family and returns, per instance, the
certified bracket of its gap to the optimum: ``[value / best_known - 1, value / bound - 1]`` (the optimum lies
between the bound and the best known objective).

Bounds: for solved instances the solver's bound holds for costs with coefficients rounded to whole nanoseconds; the
stored ``bound_s`` subtracts twice the schedule's rounding bound, as :class:`~baselines.optimal.solve.OptimalResult`
documents, and is never below :func:`~baselines.optimal.solve.optimum_lower_bound` (rounded-down prices, sound for
the float objective as it stands).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from infermax_env.cost.linear import LinearCostModel
from infermax_env.deployment import EngineConfig
from infermax_env.instances import TINY_ENGINE, tiny_setting
from infermax_env.metrics import OBJECTIVES, RunMetrics, compute_metrics, objective_value
from infermax_env.simulator import Decision, Simulator
from infermax_env.workload import Workload


DATA_DIR = Path(__file__).with_name("suite_data")
TRACE_SCALE = 32
TRACE_ENGINE = EngineConfig(kv_capacity=256, token_budget=64, max_batch_size=16, block_size=1)


@dataclass(frozen=True)
class Family:
    """A named family: ``size`` instances of ``num_requests`` requests served under ``engine``.

    Attributes:
        source: ``"tiny"`` (``tiny_setting(num_requests).sample(seed)``, seeds 0..size-1) or ``"trace"`` (lengths
            drawn from the Azure conv trace as INFERMAX preprocesses it, divided by :data:`TRACE_SCALE` and rounded
            up, all arriving at 0).
    """

    name: str
    num_requests: int
    size: int
    engine: EngineConfig
    source: str
    description: str

    def workload(self, seed: int, trace_directory: str | Path | None = None) -> Workload:
        """Generate instance ``seed`` (stored instances are read with :func:`load_family` instead)."""
        if self.source == "tiny":
            return tiny_setting(self.num_requests).sample(seed)
        from infermax_env.offline import infermax_trace

        trace = infermax_trace("conv", trace_directory)
        rows = np.random.default_rng(seed).choice(len(trace), self.num_requests, replace=False)
        prompts = np.ceil(trace.prompt_len[rows] / TRACE_SCALE).astype(int)
        outputs = np.ceil(trace.output_len[rows] / TRACE_SCALE).astype(int)
        return Workload.from_lists(prompts.tolist(), outputs.tolist(), name=f"{self.name}-{seed}")


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("tiny-6", 6, 8, TINY_ENGINE, "tiny", "Tiny setting (prompts 2-16, outputs 1-8, M = 48, C = 32), 6 requests"),
    Family("tiny-10", 10, 8, TINY_ENGINE, "tiny", "Tiny setting, 10 requests"),
    Family("tiny-16", 16, 4, TINY_ENGINE, "tiny", "Tiny setting, 16 requests"),
    Family("tiny-10-loose", 10, 4, EngineConfig(96, 32, 8, block_size=1), "tiny",
           "Tiny 10-request instances with twice the memory (M = 96)"),
    Family("tiny-10-tight", 10, 4, EngineConfig(24, 32, 8, block_size=1), "tiny",
           "Tiny 10-request instances with M = 24, just above the longest possible request (23)"),
    Family("trace-32", 32, 4, TRACE_ENGINE, "trace",
           f"32 requests with Azure conv lengths / {TRACE_SCALE} (M = 256, C = 64, at most 16 per batch)"),
    Family("trace-64", 64, 4, TRACE_ENGINE, "trace", f"64 requests, as trace-32"),
)}


def _family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}") from None


@dataclass(frozen=True)
class Entry:
    """One stored instance and objective."""

    family: str
    seed: int
    objective: str
    workload: Workload
    engine: EngineConfig
    best_known: float
    bound: float
    proven: bool
    schedule: list[Decision]
    record: dict[str, Any]


def encode_schedule(decisions: list[Decision]) -> list[list[list[int]]]:
    """Decisions as JSON lists ``[run_ids, run_tokens, evict_ids]``."""
    return [[d.run_ids.tolist(), d.run_tokens.tolist(), d.evict_ids.tolist()] for d in decisions]


def decode_schedule(rows: list[list[list[int]]]) -> list[Decision]:
    return [Decision(run, tokens, evict) for run, tokens, evict in rows]


def data_path(family: str) -> Path:
    return DATA_DIR / f"{_family(family).name}.json"


def load_records(family: str) -> dict[str, Any]:
    """The raw stored data of ``family`` (``{"instances": []}`` when nothing is stored yet)."""
    path = data_path(family)
    if not path.exists():
        return {"family": family, "instances": []}
    return json.loads(path.read_text())


def save_records(family: str, data: dict[str, Any]) -> None:
    DATA_DIR.mkdir(exist_ok=True)
    data_path(family).write_text(json.dumps(data, indent=1) + "\n")


def load_family(family: str, objective: str) -> list[Entry]:
    """The stored entries of ``family`` for ``objective`` (instances without one are skipped)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be 'latency' or 'gpu_time', got {objective!r}")
    spec, entries = _family(family), []
    for item in load_records(family)["instances"]:
        record = item["objectives"].get(objective)
        if record is None:
            continue
        engine = EngineConfig(**item["engine"])
        workload = Workload.from_lists(item["prompts"], item["outputs"], name=f"{spec.name}-{item['seed']}")
        entries.append(Entry(spec.name, item["seed"], objective, workload, engine, record["best_known_s"],
                             record["bound_s"], record["status"] == "OPTIMAL",
                             decode_schedule(record["schedule"]), record))
    return entries


def replay(entry: Entry, cost_model: LinearCostModel | None = None) -> float:
    """The simulator's objective of the stored schedule (every simulator check applies)."""
    sim = Simulator(entry.workload, cost_model or LinearCostModel(), entry.engine)
    for decision in entry.schedule:
        sim.step(decision)
    if not sim.done:
        raise ValueError(f"{entry.family} seed {entry.seed}: the stored schedule leaves requests unfinished")
    return objective_value(compute_metrics(sim), entry.objective)


@dataclass(frozen=True)
class Bracket:
    """A policy's value on one instance and the certified bracket of its gap to the optimum."""

    seed: int
    value: float
    best_known: float
    bound: float
    proven: bool

    @property
    def gap_to_best_known(self) -> float:
        """Lower end: ``value / best_known - 1`` (negative when the policy beats the stored schedule)."""
        return self.value / self.best_known - 1

    @property
    def gap_to_bound(self) -> float:
        """Upper end: ``value / bound - 1``; the true gap to the optimum is at most this."""
        return self.value / self.bound - 1


Policy = Callable[[Any, dict], Any]


def run_env_policy(env, policy: Policy, workload: Workload) -> RunMetrics:
    """Run ``policy(obs, info) -> action`` on ``env`` (a Gymnasium env of this package) for one episode on
    ``workload`` and return the simulator's metrics."""
    obs, info = env.reset(options={"workload": workload})
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs, info))
        done = terminated or truncated
    return compute_metrics(env.unwrapped.sim)


def evaluate(family: str, policy: Any, objective: str, *, env=None,
             cost_model: LinearCostModel | None = None) -> list[Bracket]:
    """Score ``policy`` on every stored instance of ``family``.

    ``policy`` is a registered scheduler name, a scheduler class or a zero-argument factory of schedulers (anything
    :meth:`Simulator.run` accepts once called), or, with ``env`` given, a function ``(obs, info) -> action`` run on
    ``env`` (whose engine must be the family's; for an SB3 model, ``lambda obs, info: model.predict(obs,
    action_masks=info["action_mask"])[0]``). Raises ``ValueError`` for an unknown family or objective, or an env whose
    engine differs from the family's."""
    cost_model = cost_model or LinearCostModel()
    brackets = []
    for entry in load_family(family, objective):
        if env is not None:
            config = env.unwrapped.config
            if config.engine != entry.engine:
                raise ValueError(f"the env's engine {config.engine} is not family {family}'s {entry.engine}")
            metrics = run_env_policy(env, policy, entry.workload)
        else:
            if isinstance(policy, str):
                from .. import make_scheduler

                scheduler = make_scheduler(policy)
            else:
                scheduler = policy()
            metrics = Simulator(entry.workload, cost_model, entry.engine).run(scheduler)
        brackets.append(Bracket(entry.seed, objective_value(metrics, objective), entry.best_known, entry.bound,
                                entry.proven))
    return brackets


def summarize(brackets: list[Bracket]) -> dict[str, float]:
    """Mean of each end of the brackets, and how many instances are proven."""
    if not brackets:
        return {"instances": 0, "proven": 0, "gap_to_best_known": math.nan, "gap_to_bound": math.nan}
    return {"instances": len(brackets), "proven": sum(b.proven for b in brackets),
            "gap_to_best_known": float(np.mean([b.gap_to_best_known for b in brackets])),
            "gap_to_bound": float(np.mean([b.gap_to_bound for b in brackets]))}
