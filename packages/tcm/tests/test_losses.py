"""TCM loss against hand-computed cosines (fixture points shared with pytorch-metric-learning)."""

import math

import pytest
import torch

from marginkit.tcm.losses import TCMConfig, TCMLoss, pair_masks, tcm_from_similarities, tcm_loss
from marginkit.tcm.memory import TCMMemory

POINTS = torch.tensor([[0.0, 1.0], [0.43, 0.9], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
LABELS = torch.tensor([0, 0, 1, 1])
# Cosines by hand: pos (0,1) 0.9/|(0.43,0.9)| = 0.902304, pos (2,3) = 0.707107;
# neg (0,2) 0, (0,3) 0.707107, (1,2) 0.431101, (1,3) 0.942859.
HARD_POS = 0.9 - 1 / math.sqrt(2)  # only (2,3) is <= 0.9
HARD_NEG = ((1 / math.sqrt(2) - 0.5) + (1.33 / math.sqrt(2 * (0.43**2 + 0.81)) - 0.5)) / 2


def test_tcm_on_four_points_matches_hand_computed_cosines():
    parts = tcm_loss(POINTS, LABELS)
    assert float(parts.pos) == pytest.approx(HARD_POS, abs=1e-12)
    assert float(parts.neg) == pytest.approx(HARD_NEG, abs=1e-12)
    assert float(parts.tcm) == pytest.approx(0.517876, abs=1e-6)
    assert (parts.n_hard_pos, parts.n_hard_neg, parts.n_pos, parts.n_neg) == (1, 2, 2, 4)


def test_tcm_gradient_wrt_similarity_is_minus_lambda_over_hard_count():
    unit = POINTS / POINTS.norm(dim=1, keepdim=True)
    scores = (unit @ unit.T).clamp(-1, 1).requires_grad_(True)
    positive, negative = pair_masks(LABELS)
    tcm_from_similarities(scores, positive, negative).tcm.backward()
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[2, 3] = -1.0
    expected[0, 3] = expected[1, 3] = 0.5
    assert torch.allclose(scores.grad, expected, rtol=0, atol=1e-15), scores.grad


def test_tcm_plus_pml_contrastive_on_cosine_adds_both_parts():
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    distances = pytest.importorskip("pytorch_metric_learning.distances")
    base = losses.ContrastiveLoss(
        pos_margin=0.9, neg_margin=0.4, distance=distances.CosineSimilarity()
    )
    out = TCMLoss(base_loss=base)(POINTS, LABELS)
    # Contrastive on similarities by hand: pos mean of relu(0.9 - s) over nonzero terms
    # (pair 2,3 twice), neg mean of relu(s - 0.4) over nonzero terms (3 pairs, both ways).
    pos = 0.9 - 1 / math.sqrt(2)
    s13 = 1.33 / math.sqrt(2 * (0.43**2 + 0.81))
    s12 = 0.43 / math.sqrt(0.43**2 + 0.81)
    neg = ((1 / math.sqrt(2) - 0.4) + (s12 - 0.4) + (s13 - 0.4)) / 3
    assert float(out.base) == pytest.approx(pos + neg, abs=1e-6)
    assert float(out.base) == pytest.approx(0.486582, abs=1e-6)
    assert float(out.loss) == pytest.approx(1.004458, abs=1e-6)


def test_tcm_equals_pml_contrastive_with_margins_when_no_pair_sits_on_a_margin():
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    distances = pytest.importorskip("pytorch_metric_learning.distances")
    base = losses.ContrastiveLoss(
        pos_margin=0.9, neg_margin=0.5, distance=distances.CosineSimilarity()
    )
    assert float(base(POINTS, LABELS)) == pytest.approx(float(tcm_loss(POINTS, LABELS).tcm), 1e-9)


def test_tcm_equals_pml_threshold_consistent_margin_loss():
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    reference = losses.ThresholdConsistentMarginLoss()
    assert float(reference(POINTS, LABELS)) == pytest.approx(0.517876, abs=1e-6)
    assert float(tcm_loss(POINTS, LABELS).tcm) == pytest.approx(float(reference(POINTS, LABELS)))


def test_reference_set_pairs_every_query_with_every_reference():
    query = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    refs = torch.tensor([[0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    parts = tcm_loss(query, torch.tensor([0]), refs, torch.tensor([0, 1, 1]))
    # positive 0.8 <= 0.9 -> 0.1; negatives 0.6 (hard, 0.1) and 0 (easy)
    assert float(parts.tcm) == pytest.approx(0.2, abs=1e-12)
    assert (parts.n_hard_pos, parts.n_hard_neg) == (1, 1)


def test_reference_set_holding_the_batch_with_ids_equals_batch_alone():
    ids = torch.arange(4)
    with_refs = tcm_loss(POINTS, LABELS, POINTS, LABELS, ids=ids, ref_ids=ids)
    assert float(with_refs.tcm) == pytest.approx(float(tcm_loss(POINTS, LABELS).tcm), abs=1e-12)
    assert with_refs.n_pos == 4  # ordered pairs: each unordered positive twice


def test_nothing_hard_gives_zero_tensor_with_zero_gradient():
    points = torch.tensor([[1.0, 0.0], [0.99, 0.1], [-1.0, 0.0]], requires_grad=True)
    parts = tcm_loss(points, torch.tensor([0, 0, 1]))
    assert isinstance(parts.tcm, torch.Tensor) and parts.tcm.ndim == 0
    parts.tcm.backward()
    assert parts.tcm.item() == 0.0
    assert torch.count_nonzero(points.grad) == 0


def test_mined_pair_listed_twice_counts_once():
    # Pairs (2,3) positive and (1,3) negative mined, (1,3) listed twice and also as (3,1).
    mined = (torch.tensor([2]), torch.tensor([3]), torch.tensor([1, 1, 3]), torch.tensor([3, 3, 1]))
    parts = tcm_loss(POINTS, LABELS, indices_tuple=mined)
    s13 = 1.33 / math.sqrt(2 * (0.43**2 + 0.81))
    assert (parts.n_hard_pos, parts.n_hard_neg) == (1, 1)
    assert float(parts.tcm) == pytest.approx(HARD_POS + s13 - 0.5, abs=1e-12)


def test_min_denominator_floors_hard_pair_count():
    parts = tcm_loss(POINTS, LABELS, config=TCMConfig(min_denominator=4))
    assert float(parts.pos) == pytest.approx(HARD_POS / 4, abs=1e-12)


def test_memory_skips_only_own_copies():
    memory = TCMMemory(size=6, dim=2)
    memory(POINTS[:2].float(), LABELS[:2])
    parts = memory(POINTS[2:].float(), LABELS[2:])
    # Batch {2,3} against memory {0,1,2,3}: positives (2,3),(3,2); negatives 2x2 with {0,1}.
    assert (parts.n_pos, parts.n_neg) == (2, 4)
    assert float(parts.pos) == pytest.approx(HARD_POS, abs=1e-6)
    assert float(parts.neg) == pytest.approx(HARD_NEG, abs=1e-6)


def test_nan_row_is_named_in_the_error():
    points = POINTS.clone()
    points[2, 0] = float("nan")
    with pytest.raises(ValueError, match="row 2"):
        tcm_loss(points, LABELS)


def test_label_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"labels has shape \(3,\).*4 rows"):
        tcm_loss(POINTS, LABELS[:3])


def test_bf16_autocast_keeps_similarities_in_fp32():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        parts = tcm_loss(POINTS.float(), LABELS)
    assert parts.tcm.dtype == torch.float32
    assert float(parts.tcm) == pytest.approx(0.517876, abs=1e-5)


def test_unnormalised_rows_are_normalised_so_scale_does_not_change_tcm():
    scaled = POINTS * torch.tensor([[3.0], [0.2], [7.0], [1.5]], dtype=torch.float64)
    assert float(tcm_loss(scaled, LABELS).tcm) == pytest.approx(0.517876, abs=1e-6)


def test_plain_function_base_loss_is_called_with_embeddings_and_labels():
    calls = []

    def base(embeddings, labels):
        calls.append((embeddings.shape, labels.tolist()))
        return embeddings.sum() * 0 + 0.25

    out = TCMLoss(base_loss=base)(POINTS, LABELS)
    assert calls == [((4, 2), [0, 0, 1, 1])]
    assert float(out.loss) == pytest.approx(0.25 + 0.517876, abs=1e-6)


def test_disabled_tcm_returns_the_base_loss_alone():
    out = TCMLoss(base_loss=lambda e, y: e.sum() * 0 + 1.5, enabled=False)(POINTS, LABELS)
    assert out.tcm is None and float(out.loss) == 1.5
