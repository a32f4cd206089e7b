"""The simulator's packed per-request state: row names and the KV-block arithmetic kernels use.

:class:`~infermax_env.Simulator` keeps per-request state in three 2-D arrays (one argument each for the compiled
kernels): ``counts`` (int64), ``times`` (float64 seconds) and ``flags`` (bool), one column per request. The
constants below index their rows, so a kernel reads ``counts[KV, r]`` and Python code ``sim.kv[r]``.
"""

from __future__ import annotations

from numba import njit

COUNT_ROWS = ("kv", "generated", "prompt_len", "output_len", "recomputed_tokens", "num_preemptions", "kv_at_finish")
TIME_ROWS = ("arrival", "first_scheduled_time", "first_token_time", "finish_time")
FLAG_ROWS = ("finished", "rejected", "closed")

# Rows of ``counts``.
KV, GENERATED, PROMPT_LEN, OUTPUT_LEN, RECOMPUTED_TOKENS, NUM_PREEMPTIONS, KV_AT_FINISH = range(len(COUNT_ROWS))
# Rows of ``times``.
ARRIVAL, FIRST_SCHEDULED_TIME, FIRST_TOKEN_TIME, FINISH_TIME = range(len(TIME_ROWS))
# Rows of ``flags``.
FINISHED, REJECTED, CLOSED = range(len(FLAG_ROWS))


@njit(cache=True)
def ceil_blocks(tokens: int, block_size: int) -> int:
    """KV blocks holding ``tokens`` tokens, for kernels (:meth:`EngineConfig.blocks` is the Python-level form)."""
    return -(-tokens // block_size)

