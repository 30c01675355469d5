import pytest

from marginkit.gradent.cli import main
from marginkit.gradent.logprobs import tokenize_pairs


class WordTokenizer:
    """Maps "w<i>" words to id i; EOS is 9 and doubles as the pad token."""

    pad_token_id = None
    eos_token_id = 9

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [int(word[1:]) for word in text.split()]}


def test_tokenize_pairs_joins_prompt_and_response_ids_and_appends_eos():
    batch = tokenize_pairs(WordTokenizer(), [{"prompt": "w1 w2", "chosen": "w3", "rejected": "w4"}])
    assert batch.chosen.input_ids[0].tolist() == [1, 2, 3, 9]
    assert batch.rejected.input_ids[0].tolist() == [1, 2, 4, 9]
    assert batch.chosen.response_mask[0].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("value", [None, 3.0])
def test_a_non_text_cell_is_refused_naming_its_row_and_column(value):
    rows = [
        {"prompt": "w1", "chosen": "w2", "rejected": "w3"},
        {"prompt": "w1", "chosen": value, "rejected": "w3"},
    ]
    with pytest.raises(ValueError, match=r"row 1 column 'chosen' .*text"):
        tokenize_pairs(WordTokenizer(), rows)


def test_a_pair_longer_than_max_length_is_refused_naming_the_pair_and_lengths():
    rows = [
        {"prompt": "w1", "chosen": "w2", "rejected": "w3"},
        {"prompt": "w1 w1", "chosen": "w2 w2 w2", "rejected": "w3"},  # chosen: 2 + 3 + EOS = 6
    ]
    tokenize_pairs(WordTokenizer(), rows, max_length=6)  # exactly at the limit is fine
    message = r"pair 1: prompt \+ chosen is 6 tokens, longer than the model.s 5 positions"
    with pytest.raises(ValueError, match=message):
        tokenize_pairs(WordTokenizer(), rows, max_length=5)


def test_measure_refuses_an_empty_data_file_by_name(tmp_path):
    empty = tmp_path / "pairs.jsonl"
    empty.write_text("")
    with pytest.raises(SystemExit, match="pairs.jsonl is empty"):
        main(["measure", "--data", str(empty), "--model", str(tmp_path / "model")])


def test_measure_refuses_a_missing_data_file_by_name(tmp_path):
    with pytest.raises(SystemExit, match="no data file at .*nope.jsonl"):
        main(["measure", "--data", str(tmp_path / "nope.jsonl"), "--model", "m"])
