"""Workloads: the requests a simulation serves, loaded from traces or generated, all seeded.

A :class:`Workload` is a struct of arrays sorted by arrival time. Instance generators
(:class:`SyntheticGenerator`, :class:`TraceWindowGenerator`) are their own objects, called with a
``numpy.random.Generator`` to draw a fresh workload, so the env, the optimal solver and the evaluation code
share one source of instances.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import WorkloadError

MAX_LENGTH = 2**40
"""Largest prompt or output length accepted (tokens): far beyond any model's context, and small enough that
sums of lengths never overflow the simulator's int64 counters."""

# Column forms accepted by the trace loader: the Vidur-processed Azure 2023 CSV and Azure's original.
AZURE_COLUMN_FORMS: tuple[dict[str, str], ...] = (
    {"arrival": "arrived_at", "prompt": "num_prefill_tokens", "output": "num_decode_tokens"},
    {"arrival": "TIMESTAMP", "prompt": "ContextTokens", "output": "GeneratedTokens"},
)


@dataclass
class Workload:
    """Requests to serve, sorted by arrival.

    Attributes:
        arrival: arrival time in seconds, non-decreasing.
        prompt_len: prompt tokens I (>= 1).
        output_len: output tokens O (>= 1), the number of tokens the request emits.
        request_id: external ids (default 0..n-1); the simulator indexes requests by position.
        features: optional (n, f) float array per request for predictors (a prompt embedding, a category).
        name: a label for reports.
    """

    arrival: np.ndarray
    prompt_len: np.ndarray
    output_len: np.ndarray
    request_id: np.ndarray | None = None
    features: np.ndarray | None = None
    name: str = "workload"
    source: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        self.arrival = np.asarray(self.arrival, dtype=np.float64).reshape(-1)
        self.prompt_len = _as_lengths(self.prompt_len, "prompt_len", self.source)
        self.output_len = _as_lengths(self.output_len, "output_len", self.source)
        n = len(self.arrival)
        if len(self.prompt_len) != n or len(self.output_len) != n:
            raise WorkloadError(f"{self._where()}arrival, prompt_len and output_len have different lengths: "
                                f"{n}, {len(self.prompt_len)}, {len(self.output_len)}")
        bad = np.flatnonzero(~np.isfinite(self.arrival) | (self.arrival < 0))
        if bad.size:
            raise WorkloadError(f"{self._where()}request {bad[0]} has invalid arrival time {self.arrival[bad[0]].item()!r}")
        unsorted = np.flatnonzero(np.diff(self.arrival) < 0)
        if unsorted.size:
            i = unsorted[0] + 1
            raise WorkloadError(f"{self._where()}arrival times are not sorted: request {i} arrives at "
                                f"{self.arrival[i].item()!r}, before request {i - 1} at {self.arrival[i - 1].item()!r}")
        self.request_id = (np.arange(n, dtype=np.int64) if self.request_id is None
                           else np.asarray(self.request_id, dtype=np.int64).reshape(-1))
        if len(self.request_id) != n:
            raise WorkloadError(f"{self._where()}request_id has {len(self.request_id)} entries for {n} requests")
        if self.features is not None:
            self.features = np.asarray(self.features, dtype=np.float32)
            if self.features.ndim == 1:
                self.features = self.features[:, None]
            if self.features.shape[0] != n:
                raise WorkloadError(f"{self._where()}features has {self.features.shape[0]} rows for {n} requests")

    def _where(self) -> str:
        return f"{self.source}: " if self.source else ""

    def __len__(self) -> int:
        return len(self.arrival)

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_lists(cls, prompt_len: Sequence[int], output_len: Sequence[int],
                   arrival: Sequence[float] | None = None, **kwargs) -> "Workload":
        """Requests given as lists; all arrive at time 0 when ``arrival`` is omitted."""
        arrival = np.zeros(len(prompt_len)) if arrival is None else arrival
        return cls(np.asarray(arrival, dtype=float), np.asarray(prompt_len), np.asarray(output_len), **kwargs)

    @classmethod
    def from_csv(cls, path: str | Path, columns: Mapping[str, str] | None = None,
                 name: str | None = None) -> "Workload":
        """Load a trace CSV.

        Without ``columns`` the Azure 2023 forms are recognised: ``arrived_at, num_prefill_tokens,
        num_decode_tokens`` (seconds) or ``TIMESTAMP, ContextTokens, GeneratedTokens`` (datetimes; made
        relative to the first row). For another CSV pass ``columns={"arrival": ..., "prompt": ...,
        "output": ...}`` naming its columns. Errors name the file, the line and the bad value.
        """
        path = Path(path)
        if not path.is_file():
            raise WorkloadError(f"trace file {str(path)!r} does not exist")
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a byte-order mark is not a column
                return cls._read_csv(handle, path, columns, name)
        except UnicodeDecodeError as error:
            raise WorkloadError(f"{path}: not a UTF-8 text file (byte {error.start}: {error.reason}); save it as "
                                f"UTF-8 CSV") from None

    @classmethod
    def _read_csv(cls, handle: Iterable[str], path: Path, columns: Mapping[str, str] | None,
                  name: str | None) -> "Workload":
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise WorkloadError(f"{path}: the file is empty")
        header = [h.strip() for h in header]
        mapping = _resolve_columns(header, columns, path)
        index = {key: header.index(col) for key, col in mapping.items()}
        arrivals: list[float] = []
        prompts: list[int] = []
        outputs: list[int] = []
        parse_time = _parse_timestamp if mapping["arrival"] == "TIMESTAMP" else _parse_float
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise WorkloadError(f"{path}, line {line_no}: expected {len(header)} columns, got {len(row)}: {row}")
            arrivals.append(parse_time(row[index["arrival"]], path, line_no, mapping["arrival"]))
            prompts.append(_parse_length(row[index["prompt"]], path, line_no, mapping["prompt"]))
            outputs.append(_parse_length(row[index["output"]], path, line_no, mapping["output"]))
        if not arrivals:
            raise WorkloadError(f"{path}: no requests after the header")
        arrival = np.asarray(arrivals)
        if mapping["arrival"] == "TIMESTAMP":
            arrival -= arrival[0]
        for i in np.flatnonzero(np.diff(arrival) < 0)[:1]:
            raise WorkloadError(f"{path}, line {i + 3}: arrival times are not sorted: {mapping['arrival']}="
                                f"{arrivals[i + 1]!r} comes after {arrivals[i]!r}")
        return cls(arrival, np.asarray(prompts), np.asarray(outputs), name=name or path.stem, source=str(path))

    # ---- transformations (each returns a new Workload) ------------------------------------------
    def subset(self, index: np.ndarray | slice) -> "Workload":
        """The requests at ``index`` (a slice or sorted positions), ids and features kept."""
        return Workload(self.arrival[index], self.prompt_len[index], self.output_len[index],
                        self.request_id[index], None if self.features is None else self.features[index],
                        name=self.name, source=self.source)

    def head(self, n: int) -> "Workload":
        return self.subset(slice(0, n))

    def window(self, start: float, end: float, rebase: bool = True) -> "Workload":
        """Requests arriving in ``[start, end)`` seconds; arrivals shifted to start at 0 when ``rebase``."""
        if end <= start:
            raise WorkloadError(f"window end {end!r} must be after start {start!r}")
        lo, hi = np.searchsorted(self.arrival, [start, end], side="left")
        sub = self.subset(slice(lo, hi))
        if rebase:
            sub.arrival = sub.arrival - start
        return sub

    def scale_rate(self, factor: float) -> "Workload":
        """Replay at ``factor`` times the arrival rate (inter-arrival times divided by ``factor``)."""
        if not factor > 0:
            raise WorkloadError(f"rate scale factor must be positive, got {factor!r}")
        out = self.subset(slice(None))
        out.arrival = self.arrival / factor
        return out

    def all_at_zero(self) -> "Workload":
        """The same requests as an offline batch: every arrival at time 0."""
        out = self.subset(slice(None))
        out.arrival = np.zeros_like(self.arrival)
        return out

    # ---- summaries -----------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return float(self.arrival[-1] - self.arrival[0]) if len(self) else 0.0

    def summary(self) -> dict[str, float]:
        n = len(self)
        return {
            "requests": n,
            "duration_s": self.duration,
            "rate_per_s": n / self.duration if self.duration > 0 else math.inf,
            "prompt_mean": float(self.prompt_len.mean()) if n else 0.0,
            "prompt_median": float(np.median(self.prompt_len)) if n else 0.0,
            "prompt_max": int(self.prompt_len.max()) if n else 0,
            "output_mean": float(self.output_len.mean()) if n else 0.0,
            "output_median": float(np.median(self.output_len)) if n else 0.0,
            "output_max": int(self.output_len.max()) if n else 0,
        }


def _as_lengths(values, name: str, source: str) -> np.ndarray:
    array = np.asarray(values)
    where = f"{source}: " if source else ""
    if array.dtype.kind not in "iuf":
        raise WorkloadError(f"{where}{name} must be numeric, got dtype {array.dtype}")
    array = array.reshape(-1)
    # compare in float64 too, so 1e19 or 2**64 - 1 cannot wrap around when cast to int64
    bad = np.flatnonzero(~np.isfinite(array) | (array < 1) | (array != np.round(array))
                         | (array.astype(np.float64) > MAX_LENGTH))
    if bad.size:
        raise WorkloadError(f"{where}{name} of request {bad[0]} is {array[bad[0]].item()!r}; lengths must be integers "
                            f"in [1, {MAX_LENGTH}]")
    return array.astype(np.int64)


def _resolve_columns(header: list[str], columns: Mapping[str, str] | None, path: Path) -> dict[str, str]:
    if columns is not None:
        mapping = dict(columns)
        unknown = set(mapping) - {"arrival", "prompt", "output"}
        if unknown or len(mapping) != 3:
            raise WorkloadError(f"columns must map exactly 'arrival', 'prompt', 'output'; got {sorted(mapping)}")
        missing = [col for col in mapping.values() if col not in header]
        if missing:
            raise WorkloadError(f"{path}: missing columns {missing}; the header has {header}")
        return mapping
    for form in AZURE_COLUMN_FORMS:
        if all(col in header for col in form.values()):
            return dict(form)
    forms = " or ".join(str(list(f.values())) for f in AZURE_COLUMN_FORMS)
    raise WorkloadError(f"{path}: missing columns: expected {forms} (or pass columns=...), the header has {header}")


def _parse_float(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise WorkloadError(f"{path}, line {line}: {column}={text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise WorkloadError(f"{path}, line {line}: {column}={text!r} must be a finite time >= 0")
    return value


def _parse_timestamp(text: str, path: Path, line: int, column: str) -> float:
    cleaned = text.strip()
    if "." in cleaned:  # Azure writes 7 fractional digits; datetime takes at most 6.
        head, frac = cleaned.split(".", 1)
        cleaned = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(cleaned).timestamp()
    except ValueError:
        try:
            return _parse_float(text, path, line, column)
        except WorkloadError:
            raise WorkloadError(f"{path}, line {line}: {column}={text!r} is neither a datetime nor seconds") from None


def _parse_length(text: str, path: Path, line: int, column: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise WorkloadError(f"{path}, line {line}: {column}={text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value) or not 1 <= value <= MAX_LENGTH:
        raise WorkloadError(f"{path}, line {line}: {column}={text!r} must be an integer in [1, {MAX_LENGTH}]")
    return int(value)


# ---- length distributions -----------------------------------------------------------------------
class LengthDistribution:
    """A seeded source of token lengths (integers >= 1)."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(LengthDistribution):
    value: int

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, max(1, int(self.value)), dtype=np.int64)


@dataclass(frozen=True)
class Uniform(LengthDistribution):
    """Integers uniform on ``[low, high]`` inclusive."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise WorkloadError(f"Uniform lengths need 1 <= low <= high, got low={self.low}, high={self.high}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high + 1, size=n, dtype=np.int64)


@dataclass(frozen=True)
class LogNormal(LengthDistribution):
    """Lognormal lengths with the given median and log-space sigma, clipped to ``[1, max_len]``."""

    median: float
    sigma: float = 1.0
    max_len: int = 32_768

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        draws = rng.lognormal(math.log(self.median), self.sigma, size=n)
        return np.clip(np.rint(draws), 1, self.max_len).astype(np.int64)


@dataclass(frozen=True)
class Empirical(LengthDistribution):
    """Draws with replacement from observed lengths (e.g. a trace's prompt lengths)."""

    values: tuple[int, ...]

    def __init__(self, values: Sequence[int] | np.ndarray):
        values = tuple(int(v) for v in np.asarray(values).reshape(-1))
        if not values or min(values) < 1:
            raise WorkloadError("Empirical lengths need at least one value, all >= 1")
        object.__setattr__(self, "values", values)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(self.values, dtype=np.int64)[rng.integers(0, len(self.values), size=n)]


# ---- instance generators ------------------------------------------------------------------------
WorkloadGenerator = Callable[[np.random.Generator], Workload]
"""Anything that draws a workload from a numpy Generator."""


@dataclass(frozen=True)
class SyntheticGenerator:
    """Draws ``num_requests`` requests with seeded arrivals and lengths.

    Args:
        num_requests: requests per instance, an int or an inclusive ``(low, high)`` range.
        prompt, output: length distributions.
        arrival: ``"poisson"`` (exponential gaps at ``rate``), ``"gamma"`` (gaps with coefficient of
            variation ``cv`` at ``rate``) or ``"offline"`` (all at time 0).
        rate: mean requests per second for the online processes.
    """

    num_requests: int | tuple[int, int] = 8
    prompt: LengthDistribution = Uniform(4, 32)
    output: LengthDistribution = Uniform(1, 16)
    arrival: str = "offline"
    rate: float = 1.0
    cv: float = 1.0
    name: str = "synthetic"

    def __post_init__(self) -> None:
        if self.arrival not in ("poisson", "gamma", "offline"):
            raise WorkloadError(f"arrival must be 'poisson', 'gamma' or 'offline', got {self.arrival!r}")
        if self.arrival != "offline" and not self.rate > 0:
            raise WorkloadError(f"rate must be positive, got {self.rate!r}")
        if self.arrival == "gamma" and not self.cv > 0:
            raise WorkloadError(f"cv must be positive, got {self.cv!r}")
        low, high = self.size_range
        if not 1 <= low <= high:
            raise WorkloadError(f"num_requests must be >= 1 (or a range low <= high), got {self.num_requests!r}")

    @property
    def size_range(self) -> tuple[int, int]:
        n = self.num_requests
        return (n, n) if isinstance(n, (int, np.integer)) else (int(n[0]), int(n[1]))

    def __call__(self, rng: np.random.Generator) -> Workload:
        low, high = self.size_range
        n = int(rng.integers(low, high + 1))
        if self.arrival == "offline":
            arrival = np.zeros(n)
        elif self.arrival == "poisson":
            arrival = np.cumsum(rng.exponential(1.0 / self.rate, size=n))
        else:
            shape = 1.0 / self.cv**2
            arrival = np.cumsum(rng.gamma(shape, 1.0 / (shape * self.rate), size=n))
        if n and self.arrival != "offline":
            arrival -= arrival[0]
        return Workload(arrival, self.prompt.sample(rng, n), self.output.sample(rng, n), name=self.name)


@dataclass(frozen=True)
class TraceWindowGenerator:
    """Draws a random window of ``num_requests`` consecutive requests from a trace, rebased to time 0 and
    replayed at ``rate_scale`` times the trace's rate."""

    trace: Workload
    num_requests: int = 256
    rate_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.num_requests <= len(self.trace):
            raise WorkloadError(f"num_requests={self.num_requests} must be in [1, {len(self.trace)}] for this trace")

    def __call__(self, rng: np.random.Generator) -> Workload:
        start = int(rng.integers(0, len(self.trace) - self.num_requests + 1))
        sub = self.trace.subset(slice(start, start + self.num_requests))
        sub.arrival = sub.arrival - sub.arrival[0]
        return sub.scale_rate(self.rate_scale) if self.rate_scale != 1.0 else sub


def default_trace_dir() -> Path | None:
    """The trace directory: ``$INFERMAX_TRACES`` when set (a path that is not a directory means none, so
    ``INFERMAX_TRACES=/nonexistent`` runs everything as without traces), else ``shared/traces`` beside the
    checkout or the working directory, if present."""
    import os

    explicit = os.environ.get("INFERMAX_TRACES", "")
    if explicit:
        return Path(explicit) if Path(explicit).is_dir() else None
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "shared" / "traces", here.parent / "shared" / "traces",
                      Path.cwd().parent / "shared" / "traces", Path.cwd() / "shared" / "traces"):
        if candidate.is_dir():
            return candidate
    return None


def load_azure_trace(kind: str = "conv", directory: str | Path | None = None) -> Workload:
    """The Azure 2023 ``"conv"`` or ``"code"`` trace from ``directory`` (default: :func:`default_trace_dir`)."""
    if kind not in ("conv", "code"):
        raise WorkloadError(f"Azure trace kind must be 'conv' or 'code', got {kind!r}")
    directory = Path(directory) if directory is not None else default_trace_dir()
    if directory is None:
        raise WorkloadError("no trace directory found: pass directory=... or set INFERMAX_TRACES "
                            "(shared/traces beside the checkout is used when present)")
    return Workload.from_csv(directory / f"azure_{kind}_2023.csv", name=f"azure-{kind}")
