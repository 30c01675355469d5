"""Throughput of the reward and of retrieval, as ratios measured in the same run.

1. Reward scoring (candidates per second) with the causal-LM reader scoring 8 passages
   per forward pass vs one passage at a time (a tiny GPT-2 reader built from config).
2. Retrieval (queries per second) of bm25s vs rank-bm25 on the embedded corpus.
"""

from __future__ import annotations

import tempfile
import time

import torch

from marginkit.adaqr.candidates import rule_candidates
from marginkit.adaqr.data import read_passages, read_turns
from marginkit.adaqr.embedded import EmbeddedDataConfig, make_data
from marginkit.adaqr.readers import CausalLMReader
from marginkit.adaqr.retrieval import BM25Retriever, analyze
from marginkit.adaqr.reward import RewardScorer
from marginkit.adaqr.rewriter import tiny_gpt2, train_tokenizer


def _rate(count: int, seconds: float) -> float:
    return count / max(seconds, 1e-9)


def main() -> None:
    torch.set_num_threads(1)
    folder = tempfile.mkdtemp()
    make_data(EmbeddedDataConfig(output_dir=folder))
    passages = read_passages(f"{folder}/passages.jsonl")
    turns = [t for t in read_turns(f"{folder}/turns.jsonl") if t.history][:12]
    tokenizer = train_tokenizer(p.text for p in passages.values())
    torch.manual_seed(0)
    model = tiny_gpt2(tokenizer, width=64, positions=1024).eval()
    retriever = BM25Retriever(passages, 0.9, 0.4)
    rows = []
    for batch_size in (1, 8):
        reader = CausalLMReader(
            model, tokenizer, passages, batch_size=batch_size, max_passage_tokens=400
        )
        scorer = RewardScorer(retriever, reader, k=5)
        start, count = time.perf_counter(), 0
        for turn in turns:
            candidates = rule_candidates(turn, 5)
            scorer.score_turn(turn, candidates)
            count += len(candidates)
        rows.append(
            (f"reward, LM reader batch {batch_size}", _rate(count, time.perf_counter() - start))
        )

    queries = [
        t.question + " " + t.history[0][0] for t in read_turns(f"{folder}/turns.jsonl") if t.history
    ]
    start = time.perf_counter()
    retriever.search(queries, 100)
    rows.append(("retrieval, bm25s (queries/s)", _rate(len(queries), time.perf_counter() - start)))
    from rank_bm25 import BM25Okapi

    okapi = BM25Okapi([analyze(f"{p.title} {p.text}") for p in passages.values()], k1=0.9, b=0.4)
    start = time.perf_counter()
    for query in queries:
        okapi.get_top_n(analyze(query), list(passages), n=100)
    rows.append(
        ("retrieval, rank-bm25 (queries/s)", _rate(len(queries), time.perf_counter() - start))
    )

    print(f"{'measurement':<36} {'per second':>12}")
    for name, value in rows:
        print(f"{name:<36} {value:>12.1f}")
    print(f"\nbatched reader / one passage at a time: {rows[1][1] / rows[0][1]:.2f}x")
    print(f"bm25s / rank-bm25: {rows[2][1] / rows[3][1]:.2f}x")


if __name__ == "__main__":
    main()
