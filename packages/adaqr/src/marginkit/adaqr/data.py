"""Conversations, passages, qrels and runs: the schema and its readers and writers.

A :class:`Turn` is one question of a conversation with everything before it; its id is
``"{conversation_id}_{turn}"``. Readers accept the package's own JSONL, QReCC-style JSON
(apple/ml-qrecc and the SCAI-QReCC / InfoCQR variants) and TopiOCQA-style JSON/JSONL (the
original release and the DPR-style files). Every reader names the file, the row and the
missing key when a record is malformed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from marginkit.shared.checkpoint import write_text_atomic

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Passage:
    """One retrievable unit of the collection."""

    id: str
    text: str
    title: str = ""


@dataclasses.dataclass
class Turn:
    """One question of a conversation, with the turns before it as ``history``.

    ``history`` holds ``(question, answer)`` pairs, oldest first; ``turn`` is 1-based.
    ``rewrite`` (a gold, self-contained rewrite) and ``answer`` are optional in general;
    the reward needs ``answer`` and SFT needs ``rewrite``.
    """

    conversation_id: str
    turn: int
    history: list[tuple[str, str]]
    question: str
    rewrite: str | None = None
    answer: str | None = None
    gold_passage_ids: list[str] = dataclasses.field(default_factory=list)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.conversation_id}_{self.turn}"

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["history"] = [{"question": q, "answer": a} for q, a in self.history]
        return record


def _require(record: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in record or record[key] is None:
        raise ValueError(f"{where}: missing key {key!r} (keys present: {sorted(record)})")
    return record[key]


def _history_from_context(context: list[Any], where: str) -> list[tuple[str, str]]:
    if len(context) % 2:
        raise ValueError(
            f"{where}: Context must alternate question/answer and have even length, "
            f"got {len(context)} entries"
        )
    return [(str(context[i]), str(context[i + 1])) for i in range(0, len(context), 2)]


# ---------------------------------------------------------------- JSON / JSONL files


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSON-lines file (blank lines skipped)."""
    path = Path(path)
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from error
    return records


def write_jsonl_atomic(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write ``records`` as JSON lines to a temporary file, then rename it into place."""
    lines = [json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n" for record in records]
    write_text_atomic(path, "".join(lines))


def write_json_atomic(path: str | Path, value: Any) -> None:
    """Write one JSON document atomically (temporary file, then rename)."""
    write_text_atomic(path, json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True))


def _load_records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle)
    if isinstance(value, dict) and "data" in value:
        value = value["data"]
    if not isinstance(value, list):
        raise ValueError(f"{path}: expected a JSON list of turn records, got {type(value)}")
    return value


# ---------------------------------------------------------------- turns


def _package_turn(record: Mapping[str, Any], where: str) -> Turn:
    history = []
    for entry in record.get("history", []):
        if isinstance(entry, Mapping):
            history.append((str(_require(entry, "question", where)), str(entry.get("answer", ""))))
        else:
            history.append((str(entry[0]), str(entry[1])))
    return Turn(
        conversation_id=str(_require(record, "conversation_id", where)),
        turn=int(_require(record, "turn", where)),
        history=history,
        question=str(_require(record, "question", where)),
        rewrite=record.get("rewrite"),
        answer=record.get("answer"),
        gold_passage_ids=[str(i) for i in record.get("gold_passage_ids", [])],
        meta=dict(record.get("meta", {})),
    )


def _qrecc_turn(record: Mapping[str, Any], where: str) -> Turn:
    context = record.get("NewContext", record.get("Context"))
    if context is None:
        raise ValueError(f"{where}: missing key 'Context' (or 'NewContext')")
    rewrite = record.get("Truth_rewrite", record.get("Rewrite"))
    answer = record.get("Truth_answer", record.get("Answer"))
    gold = record.get("Truth_passages", record.get("gold_passage_ids", []))
    meta = {k: record[k] for k in ("Answer_URL", "Conversation_source") if k in record}
    return Turn(
        conversation_id=str(_require(record, "Conversation_no", where)),
        turn=int(_require(record, "Turn_no", where)),
        history=_history_from_context(list(context), where),
        question=str(_require(record, "Question", where)),
        rewrite=rewrite,
        answer=answer,
        gold_passage_ids=[str(i) for i in gold],
        meta=meta,
    )


def _topiocqa_turn(record: Mapping[str, Any], where: str) -> Turn:
    if "conv_id" in record:  # DPR-style file
        parts = [part.strip() for part in str(_require(record, "question", where)).split("[SEP]")]
        question, earlier = parts[-1], parts[:-1]
        history = _history_from_context(earlier, where) if len(earlier) % 2 == 0 else []
        if len(earlier) % 2:
            # Limitation: DPR-style files that keep only past questions lose past answers.
            history = [(q, "") for q in earlier]
        answers = record.get("answers") or [None]
        gold = [str(ctx["passage_id"]) for ctx in record.get("positive_ctxs", [])]
        return Turn(
            conversation_id=str(record["conv_id"]),
            turn=int(_require(record, "turn_id", where)),
            history=history,
            question=question,
            rewrite=record.get("rewrite"),
            answer=answers[0],
            gold_passage_ids=gold,
        )
    gold_passage = record.get("Gold_passage") or {}
    meta = {k: record[k] for k in ("Topic", "Topic_section", "Rationale", "is_nq") if k in record}
    return Turn(
        conversation_id=str(_require(record, "Conversation_no", where)),
        turn=int(_require(record, "Turn_no", where)),
        history=_history_from_context(list(_require(record, "Context", where)), where),
        question=str(_require(record, "Question", where)),
        rewrite=record.get("Rewrite"),
        answer=record.get("Answer"),
        gold_passage_ids=[str(gold_passage["id"])] if "id" in gold_passage else [],
        meta=meta,
    )


_TURN_FORMATS = {"package": _package_turn, "qrecc": _qrecc_turn, "topiocqa": _topiocqa_turn}


def _guess_format(record: Mapping[str, Any]) -> str:
    if "conversation_id" in record:
        return "package"
    if "conv_id" in record or "Gold_passage" in record or "Topic" in record:
        return "topiocqa"
    if "Conversation_no" in record:
        return "qrecc"
    raise ValueError(f"cannot tell the format of a record with keys {sorted(record)}")


def read_turns(
    path: str | Path, format: str = "auto", fields: Mapping[str, str] | None = None
) -> list[Turn]:
    """Read conversation turns from ``path``.

    Parameters
    ----------
    path:
        ``.jsonl`` (one turn per line) or ``.json`` (a list of turns).
    format:
        ``"package"``, ``"qrecc"``, ``"topiocqa"`` or ``"auto"`` (decided per file from the
        first record's keys).
    fields:
        Renames applied to each record first: ``{"question": "Query"}`` reads the key
        ``"Query"`` as ``"question"``.
    """
    path = Path(path)
    records = _load_records(path)
    if not records:
        raise ValueError(f"{path}: no turns")
    chosen = _guess_format(_renamed(records[0], fields)) if format == "auto" else format
    if chosen not in _TURN_FORMATS:
        raise ValueError(f"format must be one of {sorted(_TURN_FORMATS)} or 'auto', got {format!r}")
    parse = _TURN_FORMATS[chosen]
    turns = [
        parse(_renamed(record, fields), f"{path}, row {row}")
        for row, record in enumerate(records, start=1)
    ]
    seen: set[str] = set()
    for turn in turns:
        if turn.id in seen:
            raise ValueError(f"{path}: turn id {turn.id!r} appears twice")
        seen.add(turn.id)
    return turns


def _renamed(record: Mapping[str, Any], fields: Mapping[str, str] | None) -> dict[str, Any]:
    record = dict(record)
    for ours, theirs in (fields or {}).items():
        if theirs in record:
            record[ours] = record.pop(theirs)
    return record


def write_turns(path: str | Path, turns: Iterable[Turn]) -> None:
    """Write turns as the package's JSONL."""
    write_jsonl_atomic(path, (turn.to_json() for turn in turns))


# ---------------------------------------------------------------- passages


def _passage_from(record: Mapping[str, Any], where: str) -> Passage:
    text = record.get("text", record.get("contents"))
    if text is None:
        raise ValueError(f"{where}: missing key 'text' (or 'contents')")
    return Passage(str(_require(record, "id", where)), str(text), str(record.get("title", "")))


def _read_tsv(path: Path) -> Iterator[Passage]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        first = next(rows, None)
        if first is None:
            return
        header = [cell.strip().lower() for cell in first]
        if "id" in header and "text" in header:
            id_col, text_col = header.index("id"), header.index("text")
            title_col = header.index("title") if "title" in header else None
        else:
            id_col, text_col, title_col = 0, 1, None
            rows = _chain([first], rows)
        for number, row in enumerate(rows, start=2):
            if len(row) <= max(id_col, text_col):
                raise ValueError(f"{path}:{number}: expected id and text columns, got {row!r}")
            title = row[title_col].replace(" [SEP] ", " ") if title_col is not None else ""
            yield Passage(row[id_col], row[text_col], title)


def _chain(*parts: Iterable[list[str]]) -> Iterator[list[str]]:
    for part in parts:
        yield from part


def read_passages(path: str | Path) -> dict[str, Passage]:
    """Read a collection: a JSONL file, a folder of JSONL files, or a TSV file.

    JSONL records need ``id`` and ``text`` (or pyserini's ``contents``), ``title`` is
    optional. A TSV needs a header with ``id`` and ``text`` (``title`` optional; DPR's
    ``" [SEP] "`` in titles becomes a space) or no header and ``id, text`` columns.
    """
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{path}: folder holds no .jsonl passage files")
    passages: dict[str, Passage] = {}
    for file in files:
        if file.suffix == ".tsv":
            items = list(_read_tsv(file))
        else:
            items = [
                _passage_from(record, f"{file}, row {row}")
                for row, record in enumerate(read_jsonl(file), start=1)
            ]
        for passage in items:
            if passage.id in passages:
                raise ValueError(f"{file}: passage id {passage.id!r} appears twice")
            passages[passage.id] = passage
    if not passages:
        raise ValueError(f"{path}: no passages")
    return passages


def write_passages(path: str | Path, passages: Iterable[Passage]) -> None:
    write_jsonl_atomic(path, (dataclasses.asdict(p) for p in passages))


def check_gold_ids(
    turns: Iterable[Turn], passages: Mapping[str, Passage], allow_missing_gold: bool = False
) -> None:
    """Raise when a gold passage id is not in the collection (warn with ``allow_missing``)."""
    missing = [pid for turn in turns for pid in turn.gold_passage_ids if pid not in passages]
    if not missing:
        return
    message = (
        f"{len(missing)} gold passage ids are not in the collection (first: {missing[:5]}); "
        "check that turns and passages use the same id space"
    )
    if not allow_missing_gold:
        raise ValueError(message + " or pass allow_missing_gold=True")
    logger.warning(message)


# ---------------------------------------------------------------- qrels and runs

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


def qrels_from_turns(turns: Iterable[Turn]) -> Qrels:
    """Grade-1 qrels from each turn's gold passage ids."""
    return {turn.id: {pid: 1 for pid in turn.gold_passage_ids} for turn in turns}


def read_qrels(path: str | Path) -> Qrels:
    """TREC qrels: ``qid iter docid rel`` per line."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise ValueError(f"{path}:{number}: expected 'qid iter docid rel', got {line!r}")
            qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return qrels


def write_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    lines = [
        f"{qid} 0 {docid} {grade}\n"
        for qid in sorted(qrels)
        for docid, grade in sorted(qrels[qid].items())
    ]
    write_text_atomic(path, "".join(lines))


def read_run(path: str | Path) -> Run:
    """TREC run: ``qid Q0 docid rank score tag`` per line."""
    run: Run = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{number}: expected 6 columns of a TREC run, got {line!r}")
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run


def write_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str) -> None:
    from marginkit.adaqr.retrieval import canonical_order

    lines = []
    for qid in sorted(run):
        for rank, (docid, score) in enumerate(canonical_order(run[qid].items()), start=1):
            lines.append(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    write_text_atomic(path, "".join(lines))
