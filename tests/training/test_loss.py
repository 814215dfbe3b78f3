import pytest
import torch

from rsn_lightning.training.loss import RSNLoss, l2_visible_loss, ohkm_loss, unit_target_level

# one sample, 3 joints, 1x2 heatmaps; numbers chosen so each term is easy to work out by hand
PRED = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]], [[3.0, 3.0]]]])
TARGET = torch.tensor([[[[0.0, 2.0]], [[4.0, 0.0]], [[1.0, 1.0]]]])
VIS = torch.tensor([[2.0, 1.0, 0.0]])  # visible, labelled-occluded, unlabelled


def test_l2_keeps_only_visible_targets():
    # keep joint 0 only: diffs [1,0],[0,0],[3,3] -> (1 + 9 + 9) / 6
    assert l2_visible_loss(PRED, TARGET, VIS).item() == pytest.approx(19 / 6)


def test_ohkm_picks_top_k_labelled_joints():
    # per-joint MSE 0.5, 8, 4; joint 2 is unlabelled -> 0; top-2 of [0.5, 8, 0] = mean(8, 0.5)
    assert ohkm_loss(PRED, TARGET, VIS, topk=2).item() == pytest.approx(4.25)
    # top-1 picks the hardest joint alone
    assert ohkm_loss(PRED, TARGET, VIS, topk=1).item() == pytest.approx(8.0)


def test_ohkm_topk_larger_than_joints_is_an_error():
    with pytest.raises(ValueError, match="top-k"):
        ohkm_loss(PRED, TARGET, VIS, topk=4)


def test_unit_levels_follow_the_paper():
    kernels = [15, 11, 9, 7, 5]
    one_stage = [kernels[unit_target_level(0, j, 1, 5)] for j in range(4)]
    assert one_stage == [11, 9, 7, 5]
    four = [[kernels[unit_target_level(s, j, 4, 5)] for j in range(4)] for s in range(4)]
    assert four[0] == four[2] == [15, 11, 9, 7]
    assert four[3] == [11, 9, 7, 5]
    assert [kernels[unit_target_level(3, j, 4, 5, coarse_to_fine=False)] for j in range(4)] == [15, 11, 9, 7]


def test_rsn_loss_sums_units_with_weights_and_levels():
    # level 0 (kernel 15) is poison: a 1-stage model must never read it
    targets = torch.stack([TARGET * 0 + 1000.0] + [TARGET] * 4, dim=1)
    outputs = [[PRED.clone() for _ in range(4)]]
    total, parts = RSNLoss(ohkm=True, topk=2)(outputs, targets, VIS)
    assert total.item() == pytest.approx(3 * 0.25 * 19 / 6 + 4.25)
    assert set(parts) == {f"stage0_unit{j}" for j in range(4)}
    # without OHKM the last unit is a plain L2 too
    total, _ = RSNLoss(ohkm=False)(outputs, targets, VIS)
    assert total.item() == pytest.approx(3 * 0.25 * 19 / 6 + 19 / 6)


def test_rsn_loss_gradient_flows_to_every_unit():
    preds = [[PRED.clone().requires_grad_(True) for _ in range(4)] for _ in range(2)]
    targets = torch.stack([TARGET] * 5, dim=1)
    total, _ = RSNLoss(topk=2)(preds, targets, VIS)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for stage in preds for p in stage)
