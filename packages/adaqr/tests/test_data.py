import json

import pytest

from marginkit.adaqr.data import (
    Passage,
    Turn,
    check_gold_ids,
    read_passages,
    read_qrels,
    read_run,
    read_turns,
    write_qrels,
    write_run,
)


def test_qrecc_json_is_read_with_history_pairs(tmp_path):
    path = tmp_path / "qrecc.json"
    path.write_text(
        json.dumps(
            [
                {
                    "Conversation_no": 7,
                    "Turn_no": 2,
                    "Context": ["Who?", "Him."],
                    "Question": "When?",
                    "Rewrite": "When did he?",
                    "Answer": "1990",
                    "Answer_URL": "u",
                },
            ]
        )
    )
    (turn,) = read_turns(path)
    assert turn.id == "7_2" and turn.history == [("Who?", "Him.")]
    assert turn.rewrite == "When did he?" and turn.answer == "1990"


def test_topiocqa_original_and_dpr_style_records(tmp_path):
    original = tmp_path / "topiocqa.jsonl"
    original.write_text(
        json.dumps(
            {
                "Conversation_no": 1,
                "Turn_no": 2,
                "Context": ["q1", "a1"],
                "Question": "q2",
                "Answer": "a2",
                "Topic": "T",
                "Gold_passage": {"id": "55", "title": "T", "text": "x"},
            }
        )
        + "\n"
    )
    (turn,) = read_turns(original)
    assert turn.gold_passage_ids == ["55"] and turn.meta["Topic"] == "T"
    dpr = tmp_path / "dpr.json"
    dpr.write_text(
        json.dumps(
            [
                {
                    "conv_id": 3,
                    "turn_id": 2,
                    "question": "q1 [SEP] a1 [SEP] q2",
                    "answers": ["a2"],
                    "positive_ctxs": [{"passage_id": "9", "title": "", "text": ""}],
                }
            ]
        )
    )
    (turn,) = read_turns(dpr)
    assert turn.history == [("q1", "a1")] and turn.question == "q2" and turn.answer == "a2"


def test_missing_field_is_named_with_file_and_row(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text(json.dumps({"conversation_id": "c", "turn": 1, "history": []}) + "\n")
    with pytest.raises(ValueError, match=r"row 1: missing key 'question'"):
        read_turns(path)


def test_field_renames_map_user_keys(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text(json.dumps({"conversation_id": "c", "turn": 1, "Query": "hi"}) + "\n")
    (turn,) = read_turns(path, fields={"question": "Query"})
    assert turn.question == "hi"


def test_passages_from_jsonl_and_tsv(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(
        '{"id": "a", "contents": "alpha"}\n{"id": "b", "text": "beta", "title": "B"}\n'
    )
    passages = read_passages(jsonl)
    assert passages["a"].text == "alpha" and passages["b"].title == "B"
    tsv = tmp_path / "p.tsv"
    tsv.write_text("id\ttext\ttitle\n1\tone\tTop [SEP] Sec\n")
    assert read_passages(tsv)["1"] == Passage("1", "one", "Top Sec")
    headerless = tmp_path / "h.tsv"
    headerless.write_text("x1\tfirst\nx2\tsecond\n")
    assert sorted(read_passages(headerless)) == ["x1", "x2"]


def test_gold_ids_outside_the_collection_are_an_error():
    turns = [Turn("c", 2, [("q", "a")], "q", gold_passage_ids=["p1", "nope"])]
    passages = {"p1": Passage("p1", "t")}
    with pytest.raises(ValueError, match=r"1 gold passage ids .*'nope'"):
        check_gold_ids(turns, passages)
    check_gold_ids(turns, passages, allow_missing_gold=True)  # warns only


def test_qrels_and_runs_round_trip_in_canonical_order(tmp_path):
    write_qrels(tmp_path / "q.trec", {"t1": {"a": 1, "b": 2}})
    assert read_qrels(tmp_path / "q.trec") == {"t1": {"a": 1, "b": 2}}
    write_run(tmp_path / "r.trec", {"t1": {"a": 1.0, "b": 1.0, "c": 2.0}}, "tag")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["c", "b", "a"]
    assert read_run(tmp_path / "r.trec")["t1"]["c"] == 2.0
