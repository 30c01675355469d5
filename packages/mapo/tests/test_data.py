"""Pair datasets: label rules, shared transforms, layouts, and errors on bad input."""

import io
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from marginkit.mapo.data import (
    FolderPairs,
    JsonlPairs,
    PickapicPairs,
    collate_pairs,
    joint_transform,
    pickapic_pairs,
)


def _png_bytes(value, size=(6, 4)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def _row(caption, first, second, label_0, label_1=None):
    return {
        "caption": caption,
        "jpg_0": _png_bytes(first),
        "jpg_1": {"bytes": _png_bytes(second), "path": None},
        "label_0": label_0,
        "label_1": 1 - label_0 if label_1 is None else label_1,
    }


def _grey(image):
    return image.getpixel((0, 0))[0]


def test_pickapic_puts_chosen_first_and_drops_ties_unless_kept():
    rows = [_row("a", 10, 20, 1), _row("b", 30, 40, 0), _row("tie", 50, 60, 0.5, 0.5)]
    pairs = pickapic_pairs(rows)
    assert [p.caption for p in pairs] == ["a", "b"]
    assert (_grey(pairs[0].chosen()), _grey(pairs[0].rejected())) == (10, 20)
    assert (_grey(pairs[1].chosen()), _grey(pairs[1].rejected())) == (40, 30)  # swapped
    kept = pickapic_pairs(rows, keep_ties=True)
    assert [p.caption for p in kept] == ["a", "b", "tie"]


def test_pickapic_reads_parquet_with_configured_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "prompt": ["x", "y"],
            "left": [_png_bytes(1), _png_bytes(2)],
            "right": [_png_bytes(3), _png_bytes(4)],
            "pref": [0.0, 1.0],
        }
    )
    path = tmp_path / "pairs.parquet"
    pq.write_table(table, path)
    dataset = PickapicPairs(
        path,
        resolution=8,
        caption_column="prompt",
        image_columns=("left", "right"),
        label_column="pref",
        second_label_column=None,
    )
    assert len(dataset) == 2
    item = dataset[0]
    expected_chosen = 3 / 127.5 - 1.0  # row 0 prefers "right" (value 3)
    assert item["chosen"][0, 0, 0].item() == pytest.approx(expected_chosen, abs=1e-6)
    assert item["caption"] == "x"


def test_pickapic_label_noise_swaps_the_seeded_fraction():
    rows = [_row(str(i), 0, 255, 1) for i in range(200)]
    pairs = pickapic_pairs(rows, label_noise_prob=0.25, seed=3)
    swapped = sum(_grey(p.chosen()) == 255 for p in pairs)
    rng = random.Random(3)
    assert swapped == sum(rng.random() < 0.25 for _ in range(200))


@pytest.mark.parametrize(
    ("rows", "error", "message"),
    [
        ([{"caption": "a", "jpg_0": b"", "label_0": 1}], KeyError, "jpg_1"),
        ([_row("a", 1, 2, 0.7)], ValueError, "label_0=0.7"),
        ([_row("a", 1, 2, 0.5, 0.5)], ValueError, "keep_ties"),
    ],
)
def test_pickapic_bad_rows_raise_naming_the_problem(rows, error, message):
    with pytest.raises(error, match=message):
        pickapic_pairs(rows)


def test_unreadable_image_raises_naming_the_row():
    row = _row("a", 1, 2, 1)
    row["jpg_0"] = b"not an image"
    dataset = PickapicPairs([row], resolution=8)
    with pytest.raises(ValueError, match="row 0 \\(chosen\\)"):
        dataset[0]


def test_joint_transform_flips_and_crops_both_images_identically():
    array = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    image = Image.fromarray(array)
    flips = set()
    for seed in range(8):
        out = joint_transform(image, image.copy(), 10, True, False, random.Random(seed))
        assert torch.equal(out["chosen"], out["rejected"])
        plain = joint_transform(image, image.copy(), 10, False, False, random.Random(seed))
        flips.add(not torch.equal(out["chosen"], plain["chosen"]))
    assert flips == {True, False}  # some seeds flip, some do not


def test_time_id_inputs_are_the_true_source_size_and_crop_corner():
    # 24 wide x 20 high: shorter side 20 -> 16, width 24 * 0.8 = 19.2 -> 19, center crop left 1
    image = Image.new("RGB", (24, 20))
    out = joint_transform(image, Image.new("RGB", (12, 10)), 16, False, True, random.Random(0))
    assert out["original_size"].tolist() == [20, 24]
    assert out["crop_top_left"].tolist() == [0, 1]
    assert out["rejected"].shape == (3, 16, 16)


def test_collate_stacks_chosen_then_rejected_in_block_order(jsonl_data):
    dataset = JsonlPairs(jsonl_data, resolution=8, random_flip=False)
    items = [dataset[0], dataset[1], dataset[2]]
    batch = collate_pairs(items)
    assert batch["pixels"].shape == (6, 3, 8, 8)
    assert torch.equal(batch["pixels"][1], items[1]["chosen"])
    assert torch.equal(batch["pixels"][4], items[1]["rejected"])


def _folder(root, chosen_stems, rejected_stems, names=("chosen", "rejected")):
    for name, stems in zip(names, (chosen_stems, rejected_stems), strict=True):
        (root / name).mkdir(parents=True)
        for stem in stems:
            Image.new("RGB", (8, 8), (9, 9, 9)).save(root / name / f"{stem}.png")


def test_folder_pairs_read_captions_from_text_files_or_metadata(tmp_path):
    _folder(tmp_path / "a", ["1", "2"], ["1", "2"])
    (tmp_path / "a" / "captions").mkdir()
    (tmp_path / "a" / "captions" / "1.txt").write_text("one\n")
    (tmp_path / "a" / "metadata.jsonl").write_text(json.dumps({"id": "2", "caption": "two"}))
    dataset = FolderPairs(tmp_path / "a", resolution=8)
    assert [pair.caption for pair in dataset.pairs] == ["one", "two"]
    _folder(tmp_path / "b", ["x"], ["x"], names=("w", "l"))
    (tmp_path / "b" / "metadata.jsonl").write_text(json.dumps({"id": "x", "caption": "ex"}))
    assert FolderPairs(tmp_path / "b", resolution=8).pairs[0].caption == "ex"


def test_folder_pairs_reject_unpaired_images_and_missing_captions(tmp_path):
    _folder(tmp_path / "a", ["1", "2"], ["1"])
    with pytest.raises(ValueError, match="without a partner.*'2'"):
        FolderPairs(tmp_path / "a")
    _folder(tmp_path / "b", ["1"], ["1"])
    with pytest.raises(ValueError, match="no caption"):
        FolderPairs(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="chosen/ and rejected/"):
        FolderPairs(tmp_path / "missing")


def test_jsonl_paths_are_relative_to_the_file_and_missing_keys_raise(tmp_path, jsonl_data):
    assert len(JsonlPairs(jsonl_data, resolution=8)) == 8
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"caption": "a", "chosen": "x.png"}) + "\n")
    with pytest.raises(KeyError, match="rejected"):
        JsonlPairs(bad)
