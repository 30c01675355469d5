"""Per-pair gradient measurement: torch.func vmap against a loop of backward passes.

Same tiny GPT-2 and pairs for both strategies; prints wall-time ratios (loop / vmap) and
peak traced memory for growing numbers of pairs and parameters. Run with
``nox -s bench-gradent`` or ``python benchmarks/run.py``.
"""

from __future__ import annotations

import time

import torch

from marginkit.gradent.data import SentimentPairs, tiny_gpt2
from marginkit.gradent.measure import measure_pairs


def _timed(model, batch, strategy, chunk_size=None):
    """Wall time, and the MB of per-pair gradients held at once (float32 entries).

    Held gradients: loop 2|S| (one pair), vmap 2|S| per pair of the chunk. On CPU torch's
    allocator is not traced, so this is the exact gradient storage, not a process peak.
    """
    start = time.perf_counter()
    measure_pairs(model, batch, params="all", strategy=strategy, chunk_size=chunk_size)
    elapsed = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())
    at_once = 1 if strategy == "loop" else (chunk_size or len(batch))
    return elapsed, at_once * 2 * parameters * 4 / 2**20


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for width in (32, 64):
        model = tiny_gpt2(seed=0)
        if width != 32:
            from transformers import GPT2Config, GPT2LMHeadModel

            config = GPT2Config.from_dict({**model.config.to_dict(), "n_embd": width})
            config._attn_implementation = "eager"
            model = GPT2LMHeadModel(config)
        parameters = sum(p.numel() for p in model.parameters())
        for pairs in (16, 64):
            batch = SentimentPairs(suffix_length=8, n=pairs, seed=1).batch()
            measure_pairs(model, batch.select(slice(0, 2)), params="all", strategy="vmap")
            loop_s, loop_mb = _timed(model, batch, "loop")
            vmap_s, vmap_mb = _timed(model, batch, "vmap")
            chunk_s, chunk_mb = _timed(model, batch, "vmap", chunk_size=8)
            rows.append((parameters, pairs, loop_s, vmap_s, chunk_s, loop_mb, vmap_mb, chunk_mb))
    header = (
        f"{'params':>7} {'pairs':>5} {'loop s':>7} {'vmap s':>7} {'chunk8 s':>8} "
        f"{'loop/vmap':>9} {'loop/chunk':>10} {'loop MB':>8} {'vmap MB':>8} {'chunk MB':>8}"
    )
    print("per-pair gradient measurement; MB = per-pair gradient storage held at once")
    print(header)
    for params, pairs, loop_s, vmap_s, chunk_s, loop_mb, vmap_mb, chunk_mb in rows:
        print(
            f"{params:>7} {pairs:>5} {loop_s:>7.2f} {vmap_s:>7.2f} {chunk_s:>8.2f} "
            f"{loop_s / vmap_s:>9.2f} {loop_s / chunk_s:>10.2f} {loop_mb:>8.1f} "
            f"{vmap_mb:>8.1f} {chunk_mb:>8.1f}"
        )


if __name__ == "__main__":
    main()
