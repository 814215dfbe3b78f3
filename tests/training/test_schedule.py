import pytest
import torch

from rsn_lightning.training.schedule import (
    build_optimizer,
    build_recipe_scheduler,
    build_scheduler,
    lr_multiplier,
    scaled_lr,
)


def _lrs(name, steps, **kw):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, name, **kw)
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


def test_authors_linear_schedule_values():
    lrs = _lrs("linear", 111, total_steps=110, warmup_steps=10, warmup_factor=0.1)
    assert lrs[0] == pytest.approx(0.1)       # warm-up starts at the factor
    assert lrs[5] == pytest.approx(0.55)
    assert lrs[10] == pytest.approx(1.0)      # warm-up end: the full rate
    assert lrs[60] == pytest.approx(0.5)      # halfway through the decay
    assert lrs[110] == pytest.approx(0.0)     # zero at the last step


def test_multistep_schedule_values_at_milestones():
    lrs = _lrs("multistep", 90, total_steps=90, warmup_steps=10, warmup_factor=0.001,
               milestones=[50, 80], gamma=0.1)
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[49] == pytest.approx(1.0)
    assert lrs[50] == pytest.approx(0.1)
    assert lrs[80] == pytest.approx(0.01)


def test_linear_scaling_rule():
    assert scaled_lr(5e-4, 256) == pytest.approx(4e-3)  # 8 GPUs x 32 images, as the authors
    assert scaled_lr(5e-4, 32) == pytest.approx(5e-4)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="unknown lr schedule 'step'"):
        lr_multiplier(0, "step", 10)


def test_recipe_settings_become_an_optimizer_and_a_per_step_schedule():
    params = [torch.nn.Parameter(torch.zeros(1))]
    # the authors' rule: 5e-4 per 32 images, 8 GPUs x 32 images -> 4e-3
    opt = build_optimizer(params, 256, name="adam", lr=5e-4, weight_decay=1e-5, betas=[0.9, 0.999], scale_lr=True,
                          reference_batch=32, fused=True)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == pytest.approx(4e-3)
    # 10 steps per epoch: half an epoch of warm-up (5 steps), x0.1 at epochs 3 and 6 (steps 30 and 60)
    sched = build_recipe_scheduler(opt, 100, 10, name="multistep", warmup_steps=2400, warmup_epochs=0.5,
                                   warmup_factor=0.1, milestones=[], milestone_epochs=[3, 6], gamma=0.1)
    rates = []
    for _ in range(61):
        rates.append(opt.param_groups[0]["lr"] / 4e-3)
        opt.step()
        sched.step()
    assert [rates[i] for i in (0, 5, 29, 30, 59, 60)] == pytest.approx([0.1, 1.0, 1.0, 0.1, 0.1, 0.01])
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        build_optimizer(params, 32, name="sgd", lr=1e-3, weight_decay=0, betas=[0.9, 0.999], scale_lr=False,
                        reference_batch=32, fused=False)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_optimizer_makes_the_default_implementations_update(name):
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(26, 13, 3, 3, generator=g), torch.randn(26, generator=g)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(5)]
    results = {}
    for fused in (True, False):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = build_optimizer(params, 32, name=name, lr=1e-3, weight_decay=1e-5, betas=[0.9, 0.999],
                              scale_lr=False, reference_batch=32, fused=fused)
        assert opt.defaults["fused"] is (True if fused else None)
        for step in grads:
            for p, gr in zip(params, step):
                p.grad = gr.clone()
            opt.step()
        results[fused] = [p.detach() for p in params]
    assert not torch.equal(results[True][0], start[0])
    for a, b in zip(results[True], results[False]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
