"""Embedded demo data built from Python's own help topics (``pydoc_data.topics``).

Passages are paragraphs of the help topics packed into chunks of at most 120 words.
Conversations are generated deterministically: turn 1 asks "What is <entity>?", each
follow-up asks about a term of the next passage with a pronoun or ellipsis ("And
<term>?"), so that retrieval needs the entity the question leaves out; the gold rewrite
fills it back in. Nothing is downloaded or vendored: the text comes from the running
interpreter, so tests derive their expectations from the generated files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from marginkit.adaqr.data import (
    Passage,
    Turn,
    qrels_from_turns,
    write_json_atomic,
    write_passages,
    write_qrels,
    write_turns,
)

MAX_PASSAGE_WORDS = 120
MAX_ANSWER_WORDS = 40
UNDERLINE = re.compile(r"^[*=\-~^]{3,}$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
TERM = re.compile(r"\b[a-z]{4,}\b")
STOPWORDS = frozenset(
    """about above after again against also although always another because been before
    being below between both cannot could does doing down during each either else every
    from further have having here however into itself just like made make many more most
    much must need neither never none only other otherwise over same should since some
    such than that their them then there these they this those though through thus under
    until upon used uses using very what when where whether which while will with within
    without would your first second following example examples note described section
    value values given case cases part returns return called call name names""".split()
)
FOLLOW_UP_TEMPLATES = (
    ("What does it say about {term}?", "What does {entity} say about {term}?"),
    ("And {term}?", "And {term} in {entity}?"),
    ("How is {term} handled there?", "How is {term} handled in {entity}?"),
)


@dataclasses.dataclass
class EmbeddedDataConfig:
    """Settings of the embedded data set (``make-data``)."""

    output_dir: str = "outputs/adaqr/data"
    """Folder for passages.jsonl, turns.jsonl, qrecc.json, qrels.trec, splits.json."""
    seed: int = 0
    """Seed of the generator (random.Random)."""
    window: int = 4
    """Follow-up passages per conversation."""
    p_shift: float = 0.3
    """Probability that a topic shift ends a conversation after a follow-up turn."""
    split_fractions: tuple[float, float, float] = (0.1, 0.6, 0.3)
    """Seed / pool / test fractions, split by conversation."""


def _topics() -> dict[str, str]:
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some distributions strip pydoc_data
        raise ImportError(
            "the embedded data needs the standard library module pydoc_data.topics, "
            "which this Python installation lacks"
        ) from error
    return dict(topics)


def entity_of(title: str) -> str:
    """'The "for" statement' -> 'the for statement'."""
    text = re.sub(r"[\"'\u201c\u201d\u2018\u2019]", "", title)
    text = re.sub(r"\s*[-\u2013\u2014]+\s*", " ", text)
    text = " ".join(text.split())
    return "the" + text[3:] if text.startswith("The ") else text


def _paragraphs(body: str) -> list[str]:
    lines = body.splitlines()
    kept = []
    for i, line in enumerate(lines):
        if UNDERLINE.match(line.strip()) and i > 0 and lines[i - 1].strip():
            continue
        kept.append(line)
    paragraphs, current = [], []
    for line in kept + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(" ".join(current).split()))
            current = []
    return paragraphs


def _split_long(paragraph: str) -> list[str]:
    if len(paragraph.split()) <= MAX_PASSAGE_WORDS:
        return [paragraph]
    pieces: list[str] = []
    for sentence in SENTENCE_END.split(paragraph):
        words = sentence.split()
        pieces += [
            " ".join(words[i : i + MAX_PASSAGE_WORDS])
            for i in range(0, len(words), MAX_PASSAGE_WORDS)
        ]
    return pieces


def build_passages(topics: dict[str, str]) -> tuple[list[Passage], dict[str, str]]:
    """Chunk each distinct topic into passages; returns passages and ``{topic: title}``."""
    passages, titles, seen_texts = [], {}, set()
    for key in sorted(topics):
        text = topics[key].strip()
        if not text or text in seen_texts:
            continue
        seen_texts.add(text)
        title = text.partition("\n")[0]
        titles[key] = title.strip()
        chunks, current = [], []
        # The first paragraph is the title itself (its underline is dropped with it).
        for paragraph in _paragraphs(text)[1:]:
            for piece in _split_long(paragraph):
                size = len(piece.split())
                if current and sum(len(c.split()) for c in current) + size > MAX_PASSAGE_WORDS:
                    chunks.append(" ".join(current))
                    current = []
                current.append(piece)
        if current:
            chunks.append(" ".join(current))
        passages += [
            Passage(f"{key}:{i:03d}", chunk, titles[key]) for i, chunk in enumerate(chunks)
        ]
    return passages, titles


def _first_sentence_with(text: str, term: str | None) -> str | None:
    for sentence in SENTENCE_END.split(text):
        if term is None or re.search(rf"\b{re.escape(term)}\b", sentence.lower()):
            spans = [m.span() for m in re.finditer(r"\S+", sentence)]
            if len(spans) > MAX_ANSWER_WORDS:
                sentence = sentence[: spans[MAX_ANSWER_WORDS - 1][1]]
            return sentence
    return None


def generate_conversations(
    passages: list[Passage], titles: dict[str, str], config: EmbeddedDataConfig
) -> list[Turn]:
    """Conversations over the passages (see the module docstring for the rules)."""
    rng = random.Random(config.seed)
    by_topic: dict[str, list[Passage]] = {}
    for passage in passages:
        by_topic.setdefault(passage.id.rsplit(":", 1)[0], []).append(passage)
    topic_terms = {
        topic: {w for p in group for w in TERM.findall(p.text.lower())}
        for topic, group in by_topic.items()
    }
    topic_df = Counter(w for terms in topic_terms.values() for w in terms)
    n_topics = len(by_topic)
    turns: list[Turn] = []
    for topic in sorted(by_topic):
        group, entity = by_topic[topic], entity_of(titles[topic])
        title_words = set(re.findall(r"[a-z]+", entity.lower()))
        opening = _first_sentence_with(group[0].text, None)
        follow_ups = group[1:]
        for window_index in range(0, len(follow_ups), config.window):
            window = follow_ups[window_index : window_index + config.window]
            conversation_id = f"{topic}-{window_index // config.window}"
            history: list[tuple[str, str]] = []
            question = f"What is {entity}?"
            turns.append(
                Turn(
                    conversation_id,
                    1,
                    [],
                    question,
                    question,
                    opening,
                    meta={"topic": topic, "entity": entity, "shift": False},
                )
            )
            history.append((question, opening or ""))
            for passage in window:
                counts = Counter(TERM.findall(passage.text.lower()))
                eligible = [
                    w
                    for w in counts
                    if w not in STOPWORDS
                    and w not in title_words
                    and 6 <= topic_df[w] <= n_topics / 2
                ]
                if not eligible:
                    continue
                term = min(
                    eligible, key=lambda w: (-counts[w] * math.log(n_topics / topic_df[w]), w)
                )
                answer = _first_sentence_with(passage.text, term)
                question_template, rewrite_template = rng.choice(FOLLOW_UP_TEMPLATES)
                turn = Turn(
                    conversation_id,
                    len(history) + 1,
                    list(history),
                    question_template.format(term=term),
                    rewrite_template.format(term=term, entity=entity),
                    answer,
                    meta={
                        "topic": topic,
                        "entity": entity,
                        "term": term,
                        "shift": False,
                        "history_entities": [entity],
                    },
                )
                turns.append(turn)
                history.append((turn.question, answer or ""))
                if rng.random() < config.p_shift:
                    others = sorted(t for t in by_topic if t != topic and term in topic_terms[t])
                    other = rng.choice(others)
                    entity2 = entity_of(titles[other])
                    source = next(
                        p for p in by_topic[other] if term in TERM.findall(p.text.lower())
                    )
                    turns.append(
                        Turn(
                            conversation_id,
                            len(history) + 1,
                            list(history),
                            f"What about {entity2}?",
                            f"What does {entity2} say about {term}?",
                            _first_sentence_with(source.text, term),
                            meta={
                                "topic": other,
                                "entity": entity2,
                                "term": term,
                                "shift": True,
                                "history_entities": [entity],
                            },
                        )
                    )
                    break
    by_id = {p.id: p for p in passages}
    for turn in turns:
        if not turn.answer:
            raise RuntimeError(f"generated turn {turn.id} has no answer")
        turn.gold_passage_ids = sorted(pid for pid, p in by_id.items() if turn.answer in p.text)
    return turns


def split_conversations(turns: list[Turn], config: EmbeddedDataConfig) -> dict[str, list[str]]:
    """Seed / pool / test conversation ids (no conversation in two splits)."""
    ids = sorted({turn.conversation_id for turn in turns})
    random.Random(config.seed + 1).shuffle(ids)
    seed_n = round(config.split_fractions[0] * len(ids))
    pool_n = round(config.split_fractions[1] * len(ids))
    return {
        "seed": sorted(ids[:seed_n]),
        "pool": sorted(ids[seed_n : seed_n + pool_n]),
        "test": sorted(ids[seed_n + pool_n :]),
    }


def _qrecc_record(turn: Turn) -> dict[str, Any]:
    return {
        "Conversation_no": turn.conversation_id,
        "Turn_no": turn.turn,
        "Context": [text for pair in turn.history for text in pair],
        "Question": turn.question,
        "Rewrite": turn.rewrite,
        "Answer": turn.answer,
        "Truth_passages": turn.gold_passage_ids,
    }


def make_data(config: EmbeddedDataConfig) -> dict[str, Any]:
    """Write the embedded data set to ``config.output_dir``; returns the manifest."""
    topics = _topics()
    passages, titles = build_passages(topics)
    turns = generate_conversations(passages, titles, config)
    splits = split_conversations(turns, config)
    out = Path(config.output_dir)
    write_passages(out / "passages.jsonl", passages)
    write_turns(out / "turns.jsonl", turns)
    write_json_atomic(out / "qrecc.json", [_qrecc_record(turn) for turn in turns])
    write_qrels(out / "qrels.trec", qrels_from_turns(turns))
    write_json_atomic(out / "splits.json", splits)
    source = "".join(topics[key] for key in sorted(topics)).encode()
    manifest = {
        "python": sys.version.split()[0],
        "topics_sha256": hashlib.sha256(source).hexdigest(),
        "config": dataclasses.asdict(config),
        "passages": len(passages),
        "conversations": len({t.conversation_id for t in turns}),
        "turns": len(turns),
        "follow_up_turns": sum(1 for t in turns if t.history),
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def load_split(data_dir: str | Path, split: str) -> set[str]:
    """Conversation ids of one split of a data folder written by :func:`make_data`."""
    import json

    splits = json.loads((Path(data_dir) / "splits.json").read_text())
    if split not in splits:
        raise ValueError(f"split must be one of {sorted(splits)}, got {split!r}")
    return set(splits[split])
