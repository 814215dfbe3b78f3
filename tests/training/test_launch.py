"""How a sweep's jobs share a machine and resume on a cluster: GPU slots, the checkpoint of a requeued job."""

from __future__ import annotations

import os

import pytest

from rsn_lightning.training.launch import requeued_checkpoint, take_slot


def test_gpu_slots_are_exclusive_until_released(tmp_path):
    first, lock0 = take_slot(tmp_path, 2)
    second, lock1 = take_slot(tmp_path, 2)
    assert (first, second) == (0, 1)
    with pytest.raises(TimeoutError, match="no free slot among 2"):
        take_slot(tmp_path, 2, wait_s=0)
    lock0.close()
    assert take_slot(tmp_path, 2, wait_s=0)[0] == 0
    lock1.close()


def test_a_requeued_job_resumes_from_its_newest_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_text("x")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert requeued_checkpoint(tmp_path) is None  # a first start trains from scratch
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_checkpoint(tmp_path) == str(last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    hpc.write_text("x")
    os.utime(last, (1, 1))
    assert requeued_checkpoint(tmp_path) == str(hpc)
