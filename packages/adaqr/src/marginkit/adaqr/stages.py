"""The pipeline stages that need no training: sample (rules), score, pairs, evaluate.

Each stage reads the files of the stage before it from ``run_dir`` and writes one JSONL
file keyed by turn id. On a rerun, turns already in the output are skipped; the file is
rewritten atomically after every ``flush_every`` new turns, so an interrupted stage
resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from marginkit.adaqr.candidates import BASELINES, rule_candidates
from marginkit.adaqr.config import AdaQRConfig
from marginkit.adaqr.data import (
    Passage,
    Turn,
    check_gold_ids,
    qrels_from_turns,
    read_jsonl,
    read_passages,
    read_turns,
    write_json_atomic,
    write_jsonl_atomic,
)
from marginkit.adaqr.embedded import load_split
from marginkit.adaqr.manifest import write_manifest
from marginkit.adaqr.metrics import crosscheck_pytrec_eval, evaluate_run
from marginkit.adaqr.pairs import build_pairs
from marginkit.adaqr.prompts import render_prompt
from marginkit.adaqr.readers import CausalLMReader, Reader, UnigramReader
from marginkit.adaqr.retrieval import BM25Retriever, DenseRetriever, HashingEncoder, Retriever
from marginkit.adaqr.reward import RewardScorer, deduplicate, scored_from_json

logger = logging.getLogger(__name__)


class ResumableJsonl:
    """Records keyed by ``turn_id``, loaded from ``path`` when it exists, saved atomically."""

    def __init__(self, path: str | Path, flush_every: int = 50) -> None:
        self.path, self.flush_every = Path(path), flush_every
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for record in read_jsonl(self.path):
                self.records[str(record["turn_id"])] = record
        self._unsaved = 0

    def __contains__(self, turn_id: str) -> bool:
        return turn_id in self.records

    def add(self, record: dict[str, Any]) -> None:
        self.records[str(record["turn_id"])] = record
        self._unsaved += 1
        if self._unsaved >= self.flush_every:
            self.save()

    def save(self) -> None:
        write_jsonl_atomic(self.path, (self.records[k] for k in sorted(self.records)))
        self._unsaved = 0


@dataclasses.dataclass
class Inputs:
    """Turns and passages of a run, validated."""

    turns: list[Turn]
    passages: dict[str, Passage]

    def turns_by_id(self) -> dict[str, Turn]:
        return {turn.id: turn for turn in self.turns}

    def split(self, data_dir: str, split: str) -> list[Turn]:
        """Turns of one split of splits.json ('' = all)."""
        if not split:
            return list(self.turns)
        conversations = load_split(data_dir, split)
        return [turn for turn in self.turns if turn.conversation_id in conversations]


def load_inputs(config: AdaQRConfig) -> Inputs:
    """Read and validate the turns and passages named by ``config``."""
    data_dir = Path(config.data_dir)
    turns_path = Path(config.turns_file) if config.turns_file else data_dir / "turns.jsonl"
    passages_path = (
        Path(config.passages_file) if config.passages_file else data_dir / "passages.jsonl"
    )
    for path, what in ((turns_path, "turns"), (passages_path, "passages")):
        if not path.exists():
            raise FileNotFoundError(
                f"{what} file {path} does not exist; run `marginkit-adaqr make-data` or set "
                f"--{what}-file"
            )
    turns = read_turns(turns_path, config.turns_format)
    passages = read_passages(passages_path)
    check_gold_ids(turns, passages, config.allow_missing_gold)
    return Inputs(turns, passages)


def make_retriever(config: AdaQRConfig, passages: Mapping[str, Passage]) -> Retriever:
    """The retriever named by ``config.retriever`` (its tau overridden by ``config.tau``)."""
    retriever: Retriever
    if config.retriever == "bm25":
        retriever = BM25Retriever(passages, config.bm25_k1, config.bm25_b)
    elif config.retriever == "dense":
        if config.dense_encoder == "hashing":
            encoder: Callable[..., Any] = HashingEncoder()
        else:
            from marginkit.adaqr.retrieval import MiniLMEncoder

            encoder = MiniLMEncoder()
        retriever = DenseRetriever(passages, encoder, cache_dir=config.embedding_cache or None)
    else:
        raise ValueError(f"retriever must be 'bm25' or 'dense', got {config.retriever!r}")
    if config.tau > 0:
        retriever.tau = config.tau
    return retriever


def make_reader(config: AdaQRConfig, passages: Mapping[str, Passage]) -> Reader:
    if config.reader == "unigram":
        return UnigramReader(passages)
    if config.reader == "lm":
        if not config.reader_model:
            raise ValueError("reader='lm' needs --reader-model (hub id or local path)")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.reader_model)
        model = AutoModelForCausalLM.from_pretrained(config.reader_model)
        return CausalLMReader(
            model, tokenizer, passages, config.reader_batch_size, name=config.reader_model
        )
    raise ValueError(f"reader must be 'unigram' or 'lm', got {config.reader!r}")


def rewritable(turns: Iterable[Turn]) -> list[Turn]:
    """Turns with history: first turns are never rewritten nor used for training."""
    return [turn for turn in turns if turn.history]


def sample_rules(config: AdaQRConfig, turns: Iterable[Turn]) -> Path:
    """``sample`` with the deterministic generator: run_dir/candidates.jsonl."""
    out = ResumableJsonl(Path(config.run_dir) / "candidates.jsonl")
    for turn in rewritable(turns):
        if turn.id not in out:
            out.add(
                {"turn_id": turn.id, "candidates": rule_candidates(turn, config.num_candidates)}
            )
    out.save()
    write_manifest(config, "sample", out.path, generator="rules", turns=len(out.records))
    return out.path


def score(config: AdaQRConfig, inputs: Inputs, scorer: RewardScorer | None = None) -> Path:
    """``score``: retrieve and reward every candidate; run_dir/scored.jsonl."""
    run_dir = Path(config.run_dir)
    candidates_path = run_dir / "candidates.jsonl"
    if not candidates_path.exists():
        raise FileNotFoundError(f"{candidates_path} is missing; run `sample` first")
    scorer = scorer or RewardScorer(
        make_retriever(config, inputs.passages),
        make_reader(config, inputs.passages),
        config.k,
        None,
        config.aggregation,
    )
    turns = inputs.turns_by_id()
    out = ResumableJsonl(run_dir / "scored.jsonl")
    for record in read_jsonl(candidates_path):
        turn_id = str(record["turn_id"])
        if turn_id in out:
            continue
        if turn_id not in turns:
            raise ValueError(f"{candidates_path}: turn {turn_id!r} is not among the turns")
        scored = scorer.score_turn(turns[turn_id], deduplicate(record["candidates"]))
        out.add({"turn_id": turn_id, "candidates": [c.to_json() for c in scored]})
    out.save()
    write_manifest(
        config,
        "score",
        out.path,
        retriever=getattr(scorer, "retriever", None),
        reader=getattr(scorer, "reader", None),
        tau=getattr(scorer, "tau", None),
        turns=len(out.records),
    )
    return out.path


def pairs(config: AdaQRConfig, inputs: Inputs) -> tuple[Path, dict[str, float]]:
    """``pairs``: preference pairs from scored.jsonl; run_dir/pairs.jsonl and statistics."""
    run_dir = Path(config.run_dir)
    scored_path = run_dir / "scored.jsonl"
    if not scored_path.exists():
        raise FileNotFoundError(f"{scored_path} is missing; run `score` first")
    turns = inputs.turns_by_id()
    records, candidates_total, unscored, turns_with_pairs = [], 0, 0, 0
    for record in read_jsonl(scored_path):
        turn = turns[str(record["turn_id"])]
        scored = scored_from_json(record["candidates"])
        candidates_total += len(scored)
        unscored += sum(1 for c in scored if c.loss is None)
        prompt = render_prompt(turn.history, turn.question)
        found = build_pairs(turn.id, prompt, scored, config.epsilon, config.no_hit)
        turns_with_pairs += bool(found)
        records += [dataclasses.asdict(pair) for pair in found]
    write_jsonl_atomic(run_dir / "pairs.jsonl", records)
    stats = {
        "pairs": float(len(records)),
        "turns_with_pairs": float(turns_with_pairs),
        "unscored_share": unscored / max(candidates_total, 1),
    }
    write_json_atomic(run_dir / "pairs_stats.json", stats)
    write_manifest(config, "pairs", run_dir / "pairs.jsonl", statistics=stats)
    logger.info("pairs: %s", stats)
    return run_dir / "pairs.jsonl", stats


def retrieval_run(retriever: Retriever, turns: list[Turn], queries: list[str], depth: int):
    """``{turn_id: {passage_id: score}}`` for one query per turn."""
    hits = retriever.search(queries, depth)
    return {turn.id: {h.passage_id: h.score for h in found} for turn, found in zip(turns, hits)}


def evaluate_strategies(
    retriever: Retriever,
    turns: list[Turn],
    strategies: Mapping[str, Mapping[str, str]],
    depth: int = 100,
    crosscheck: bool = False,
) -> list[dict[str, Any]]:
    """One row per query strategy ``{name: {turn_id: query}}`` (metrics x100).

    First turns keep their question whatever the strategy; follow-up-only MRR is beside
    the all-turn figures.
    """
    qrels = qrels_from_turns(turns)
    follow_ups = [turn.id for turn in turns if turn.history]
    rows = []
    for name, queries in strategies.items():
        texts = [turn.question if not turn.history else queries[turn.id] for turn in turns]
        run = retrieval_run(retriever, turns, texts, depth)
        evaluation = evaluate_run(run, qrels, depth)
        row: dict[str, Any] = {"query": name, **evaluation.summary()}
        row["mrr_follow_up"] = evaluation.summary(follow_ups)["mrr"]
        if crosscheck:
            row["crosscheck"] = crosscheck_pytrec_eval(run, qrels, depth)["status"]
        rows.append(row)
    return rows


def baseline_queries(turns: Iterable[Turn]) -> dict[str, dict[str, str]]:
    """The model-free strategies (original, history concatenations, gold rewrite)."""
    turns = list(turns)
    return {name: {t.id: make(t) for t in turns} for name, make in BASELINES.items()}


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table of ``rows`` with the given columns."""
    header = ["query"] + columns
    body = [[str(row["query"])] + [_cell(c, row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        for line in [header] + body
    ]
    return "\n".join(lines)


def _cell(column: str, value: Any) -> str:
    """Counts (``turns``, ``empty_runs``) as integers, other floats with two decimals."""
    if isinstance(value, float):
        return str(int(value)) if column in ("turns", "empty_runs") else f"{value:.2f}"
    return str(value)
