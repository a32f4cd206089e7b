"""vLLM's default (v0, no chunked prefill) scheduler, as INFERMAX models it."""

from __future__ import annotations

import numpy as np

from infermax_env.simulator import Decision, Simulator


class VLLMScheduler:
    """FCFS, prefill-first, whole prompts, evict-newest on memory pressure (recompute).

    Each iteration:

    1. Prefill: walk waiting requests in arrival order and admit each whose whole remaining prefill
       (prompt, plus generated tokens after an eviction) fits in the token budget, the batch size and free
       KV memory; stop at the first that does not (head-of-line blocking, as vLLM does). If any was
       admitted, the iteration is prefill-only. A prefill larger than the whole budget C is chunked to C
       (vLLM would reject it; chunking keeps every request served).
    2. Otherwise every resident request (in arrival order, up to the batch size) computes its next token;
       while the KV for that does not fit, the newest-arriving resident request is evicted.
    """

    name = "vllm"

    def reset(self, sim: Simulator) -> None:
        pass

    def decide(self, sim: Simulator) -> Decision:
        cfg = sim.config
        free_blocks = cfg.num_blocks - sim.kv_blocks_used
        if sim.waiting:
            decision = self._prefills(sim, free_blocks)
            if decision is not None:
                return decision
        resident = np.sort(sim.resident_ids())
        tokens = np.minimum(sim.need(resident), cfg.token_budget)
        kv = sim.kv[resident]
        extra = tokens if cfg.block_size == 1 else sim._blocks(kv + tokens) - sim._blocks(kv)
        needed = int(extra.sum())
        keep = len(resident)
        while needed > free_blocks and keep > 1:
            keep -= 1
            needed -= int(extra[keep])
            free_blocks += int(sim._blocks(kv[keep]))
        evict = resident[keep:]
        run = min(keep, cfg.max_batch_size)
        if int(tokens[:run].sum()) > cfg.token_budget:
            run = int(np.count_nonzero(np.cumsum(tokens[:run]) <= cfg.token_budget))
        return Decision(resident[:run], tokens[:run], evict)

    @staticmethod
    def _prefills(sim: Simulator, free_blocks: int) -> Decision | None:
        cfg = sim.config
        budget = cfg.token_budget
        ids: list[int] = []
        tokens: list[int] = []
        for r in sim.waiting_by_arrival():
            n = min(int(sim.prompt_len[r] + sim.generated[r]), cfg.token_budget)
            blocks = int(sim._blocks(n))
            if n > budget or blocks > free_blocks or len(ids) == cfg.max_batch_size:
                break
            ids.append(r)
            tokens.append(n)
            budget -= n
            free_blocks -= blocks
        return Decision(ids, tokens) if ids else None
