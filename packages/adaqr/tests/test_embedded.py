import json
import re

from marginkit.adaqr.data import read_passages, read_qrels, read_turns
from marginkit.adaqr.embedded import EmbeddedDataConfig, entity_of, make_data

FUNCTION_WORDS = {"the", "and", "of", "in", "a", "an", "to"}


def test_same_seed_gives_byte_identical_files(embedded_data, tmp_path):
    folder, _ = embedded_data
    make_data(EmbeddedDataConfig(output_dir=str(tmp_path)))
    for name in ("passages.jsonl", "turns.jsonl", "qrels.trec", "splits.json", "qrecc.json"):
        assert (folder / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_answers_are_substrings_of_every_gold_passage(embedded_data):
    folder, manifest = embedded_data
    passages = read_passages(folder / "passages.jsonl")
    turns = read_turns(folder / "turns.jsonl")
    qrels = read_qrels(folder / "qrels.trec")
    assert len(turns) == manifest["turns"] and len(passages) == manifest["passages"]
    for turn in turns:
        assert turn.gold_passage_ids, turn.id
        assert set(qrels[turn.id]) == set(turn.gold_passage_ids)
        for pid in turn.gold_passage_ids:
            assert turn.answer in passages[pid].text
    assert all(len(p.text.split()) <= 120 for p in passages.values())


def test_follow_up_questions_leave_out_their_entity(embedded_data):
    folder, _ = embedded_data
    for turn in read_turns(folder / "turns.jsonl"):
        if turn.history and not turn.meta["shift"]:
            words = set(re.findall(r"[a-z]+", turn.question.lower()))
            title = set(re.findall(r"[a-z]+", turn.meta["entity"].lower())) - FUNCTION_WORDS
            assert not words & title, turn.id
            assert turn.meta["entity"] in turn.rewrite


def test_splits_share_no_conversation(embedded_data):
    folder, _ = embedded_data
    splits = json.loads((folder / "splits.json").read_text())
    seen = [set(ids) for ids in splits.values()]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    everything = {t.conversation_id for t in read_turns(folder / "turns.jsonl")}
    assert set().union(*seen) == everything


def test_entity_drops_quotes_and_lowercases_leading_the():
    assert entity_of('The "for" statement') == "the for statement"
    assert entity_of("Built-in Functions") == "Built in Functions"
