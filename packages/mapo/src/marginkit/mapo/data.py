"""Preference pairs (prompt, chosen image, rejected image) from the formats users have.

* :class:`PickapicPairs`: Pick-a-Pic-style tables (parquet file, ``datasets.Dataset``, a
  list of dicts, or a hub id) with columns ``caption``, ``jpg_0``, ``jpg_1``, ``label_0``.
* :class:`FolderPairs`: ``root/chosen/<id>.<ext>`` and ``root/rejected/<id>.<ext>``.
* :class:`JsonlPairs`: one ``{"caption", "chosen", "rejected"}`` object per line.

All share :class:`PairDataset`: both images of a pair get the same resize, flip and crop,
the chosen image always comes first, and every item records the chosen image's true size
and crop corner for SDXL's micro-conditioning.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from marginkit.mapo.config import TrainConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VALID_LABELS = (0.0, 0.5, 1.0)

ImageSource = Callable[[], Image.Image]


@dataclasses.dataclass
class Pair:
    """One preference pair; images are loaded lazily by the two callables."""

    caption: str
    chosen: ImageSource
    rejected: ImageSource
    name: str


def _open_image(source: Any, where: str) -> Image.Image:
    try:
        if isinstance(source, Mapping):
            if source.get("bytes") is not None:
                source = source["bytes"]
            else:
                source = source.get("path")
        if isinstance(source, (bytes, bytearray)):
            image = Image.open(io.BytesIO(source))
        elif isinstance(source, Image.Image):
            image = source
        else:
            image = Image.open(str(source))
        return image.convert("RGB")
    except Exception as error:  # PIL raises several unrelated types
        raise ValueError(f"cannot read the image of {where}: {error}") from error


def joint_transform(
    chosen: Image.Image,
    rejected: Image.Image,
    resolution: int,
    flip: bool,
    center_crop: bool,
    rng: random.Random,
) -> dict[str, torch.Tensor]:
    """Apply one resize, flip and crop to both images of a pair; pixels to ``[-1, 1]``.

    The rejected image is first resized to the chosen one's size, then both have their
    shorter side resized to ``resolution`` (bilinear), are flipped horizontally together
    with probability 1/2 (when ``flip``), and cropped to ``resolution`` squared at the same
    corner (center or random), measured after the resize.

    Returns
    -------
    dict
        ``chosen``/``rejected`` ``(3, resolution, resolution)`` tensors, ``original_size``
        ``(2,)`` = chosen (height, width) before the transform, ``crop_top_left`` ``(2,)``.
    """
    width, height = chosen.size
    if rejected.size != chosen.size:
        rejected = rejected.resize(chosen.size, Image.BILINEAR)
    scale = resolution / min(width, height)
    new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    chosen = chosen.resize(new_size, Image.BILINEAR)
    rejected = rejected.resize(new_size, Image.BILINEAR)
    if flip and rng.random() < 0.5:
        chosen = chosen.transpose(Image.FLIP_LEFT_RIGHT)
        rejected = rejected.transpose(Image.FLIP_LEFT_RIGHT)
    if center_crop:
        top = (new_size[1] - resolution) // 2
        left = (new_size[0] - resolution) // 2
    else:
        top = rng.randint(0, new_size[1] - resolution)
        left = rng.randint(0, new_size[0] - resolution)
    box = (left, top, left + resolution, top + resolution)

    def to_tensor(image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.crop(box), dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    return {
        "chosen": to_tensor(chosen),
        "rejected": to_tensor(rejected),
        "original_size": torch.tensor([height, width]),
        "crop_top_left": torch.tensor([top, left]),
    }


class PairDataset(torch.utils.data.Dataset):
    """A ``torch`` dataset of transformed pairs; flips and random crops are seeded.

    The randomness of item ``i`` depends only on ``(seed, epoch, i)``, so a resumed run
    sees exactly the pixels the interrupted one would have; call :meth:`set_epoch`.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        resolution: int = 1024,
        random_flip: bool = True,
        center_crop: bool = True,
        seed: int = 0,
    ) -> None:
        if len(pairs) == 0:
            raise ValueError("the dataset has no preference pairs")
        if resolution < 8:
            raise ValueError(f"resolution must be >= 8 pixels, got {resolution}")
        self.pairs = list(pairs)
        self.resolution = resolution
        self.random_flip = random_flip
        self.center_crop = center_crop
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
        item = joint_transform(
            pair.chosen(),
            pair.rejected(),
            self.resolution,
            self.random_flip,
            self.center_crop,
            rng,
        )
        item["caption"] = pair.caption
        return item


def collate_pairs(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack items: ``pixels (2B, 3, H, W)`` in block order, captions, sizes ``(B, 2)``."""
    return {
        "pixels": torch.stack([i["chosen"] for i in items] + [i["rejected"] for i in items]),
        "captions": [i["caption"] for i in items],
        "original_size": torch.stack([i["original_size"] for i in items]),
        "crop_top_left": torch.stack([i["crop_top_left"] for i in items]),
    }


def _read_table(source: Any, split: str) -> Iterable[Mapping[str, Any]]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix == ".parquet" or path.is_dir():
            try:
                import pyarrow.parquet as pq
            except ImportError as error:
                raise ImportError(
                    "reading parquet needs pyarrow: pip install 'marginkit-mapo[data]'"
                ) from error

            return pq.read_table(str(path)).to_pylist()
        if path.exists():
            raise ValueError(f"{path} is not a parquet file or folder of parquet files")
        from datasets import load_dataset

        return load_dataset(str(source), split=split)
    return source


def pickapic_pairs(
    source: Any,
    caption_column: str = "caption",
    image_columns: tuple[str, str] = ("jpg_0", "jpg_1"),
    label_column: str = "label_0",
    second_label_column: str | None = "label_1",
    keep_ties: bool = False,
    label_noise_prob: float = 0.0,
    seed: int = 0,
    split: str = "train",
) -> list[Pair]:
    """Pairs from a Pick-a-Pic-style table, chosen first, ties dropped unless kept.

    ``label_0 = 1`` means ``jpg_0`` is preferred, ``0`` means ``jpg_1``, ``0.5`` is a tie.
    Ties are filtered before the swap (``0.5 != 0`` would otherwise keep them unswapped).
    With ``label_noise_prob`` each kept pair is swapped with that probability (seeded).
    """
    if not 0.0 <= label_noise_prob <= 1.0:
        raise ValueError(f"label_noise_prob must be in [0, 1], got {label_noise_prob}")
    rows = _read_table(source, split)
    needed = [caption_column, *image_columns, label_column]
    noise_rng = random.Random(seed)
    pairs = []
    for index, row in enumerate(rows):
        missing = [column for column in needed if column not in row]
        if missing:
            raise KeyError(
                f"row {index} lacks column(s) {missing}; found {sorted(row)}. Set the "
                f"caption/image/label column names to match the table"
            )
        label = row[label_column]
        if label is None or float(label) not in VALID_LABELS:
            raise ValueError(f"row {index}: {label_column}={label!r} is not one of {VALID_LABELS}")
        label = float(label)
        if second_label_column is not None and second_label_column in row:
            other = row[second_label_column]
            if other is None or float(other) not in VALID_LABELS:
                raise ValueError(
                    f"row {index}: {second_label_column}={other!r} is not one of {VALID_LABELS}"
                )
            is_tie = float(other) == label
        else:
            is_tie = label == 0.5
        if is_tie and not keep_ties:
            continue
        first, second = row[image_columns[0]], row[image_columns[1]]
        if label == 0.0:
            first, second = second, first
        if label_noise_prob and noise_rng.random() < label_noise_prob:
            first, second = second, first
        where = f"row {index}"
        pairs.append(
            Pair(
                caption=str(row[caption_column]),
                chosen=lambda s=first, w=where: _open_image(s, w + " (chosen)"),
                rejected=lambda s=second, w=where: _open_image(s, w + " (rejected)"),
                name=str(index),
            )
        )
    if not pairs:
        raise ValueError("no pairs left after dropping ties; pass keep_ties=True to keep them")
    return pairs


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def folder_pairs(root: str | Path) -> list[Pair]:
    """Pairs from ``root/chosen`` + ``root/rejected`` (or ``w``/``l``), paired by file stem.

    Captions come from ``root/captions/<id>.txt`` or ``root/metadata.jsonl``
    (``{"id", "caption"}`` per line). Stems present on one side only raise.
    """
    root = Path(root)
    for chosen_name, rejected_name in (("chosen", "rejected"), ("w", "l")):
        if (root / chosen_name).is_dir() and (root / rejected_name).is_dir():
            break
    else:
        raise FileNotFoundError(f"{root} needs chosen/ and rejected/ (or w/ and l/) folders")
    chosen = _images_by_stem(root / chosen_name)
    rejected = _images_by_stem(root / rejected_name)
    unpaired = sorted(set(chosen) ^ set(rejected))
    if unpaired:
        raise ValueError(f"images without a partner in {root}: {unpaired[:10]}")
    captions: dict[str, str] = {}
    metadata = root / "metadata.jsonl"
    if metadata.is_file():
        for line in metadata.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                captions[str(record["id"])] = str(record["caption"])
    pairs = []
    for stem in sorted(chosen):
        text_file = root / "captions" / f"{stem}.txt"
        if text_file.is_file():
            captions[stem] = text_file.read_text(encoding="utf-8").strip()
        if stem not in captions:
            raise ValueError(f"pair {stem!r} has no caption in captions/ or metadata.jsonl")
        pairs.append(
            Pair(
                captions[stem],
                lambda p=chosen[stem]: _open_image(p, str(p)),
                lambda p=rejected[stem]: _open_image(p, str(p)),
                stem,
            )
        )
    return pairs


def jsonl_pairs(path: str | Path) -> list[Pair]:
    """Pairs from a JSONL file of ``{"caption", "chosen", "rejected"[, "id"]}``.

    Image paths are relative to the JSONL file's folder unless absolute.
    """
    path = Path(path)
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        missing = [key for key in ("caption", "chosen", "rejected") if key not in record]
        if missing:
            raise KeyError(f"{path}:{number} lacks key(s) {missing}")
        chosen, rejected = (path.parent / record["chosen"], path.parent / record["rejected"])
        pairs.append(
            Pair(
                str(record["caption"]),
                lambda p=chosen: _open_image(p, str(p)),
                lambda p=rejected: _open_image(p, str(p)),
                str(record.get("id", number)),
            )
        )
    if not pairs:
        raise ValueError(f"{path} holds no pairs")
    return pairs


class PickapicPairs(PairDataset):
    """:class:`PairDataset` over a Pick-a-Pic-style table; see :func:`pickapic_pairs`."""

    def __init__(self, source: Any, resolution: int = 1024, seed: int = 0, **options: Any):
        view = {k: options.pop(k) for k in ("random_flip", "center_crop") if k in options}
        super().__init__(
            pickapic_pairs(source, seed=seed, **options), resolution, seed=seed, **view
        )


class FolderPairs(PairDataset):
    """:class:`PairDataset` over a chosen/rejected folder layout; see :func:`folder_pairs`."""

    def __init__(self, root: str | Path, resolution: int = 1024, **options: Any):
        super().__init__(folder_pairs(root), resolution, **options)


class JsonlPairs(PairDataset):
    """:class:`PairDataset` over a JSONL file of pairs; see :func:`jsonl_pairs`."""

    def __init__(self, path: str | Path, resolution: int = 1024, **options: Any):
        super().__init__(jsonl_pairs(path), resolution, **options)


def build_dataset(config: TrainConfig) -> PairDataset:
    """The preference-pair dataset named by ``config.data_format`` and ``config.data_path``."""
    if not config.data_path:
        raise ValueError("data_path is empty; point it at the preference pairs")
    view = {
        "random_flip": config.random_flip,
        "center_crop": config.center_crop,
        "seed": config.seed,
    }
    if config.data_format == "folder":
        return FolderPairs(config.data_path, config.resolution, **view)
    if config.data_format == "jsonl":
        return JsonlPairs(config.data_path, config.resolution, **view)
    return PickapicPairs(
        config.data_path,
        config.resolution,
        caption_column=config.caption_column,
        image_columns=(config.image_column_0, config.image_column_1),
        label_column=config.label_column,
        keep_ties=config.keep_ties,
        label_noise_prob=config.label_noise_prob,
        **view,
    )
