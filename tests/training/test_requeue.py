"""SLURM's time-limit warning keeps the job's progress: a real training process gets a real SIGUSR2 mid-epoch,
saves last.ckpt at that step, records itself as requeued and runs the requeue command once; resuming from that
checkpoint ends with the weights of a run that was never stopped. And the wandb server probe runs on rank 0
only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from module_settings import lit_module
from test_module import make_datamodule, make_trainer, tiny_net

from rsn_lightning.runs.sweeps import load_summary
from rsn_lightning.training import requeue
from rsn_lightning.training.loggers import wandb_logger

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="needs POSIX SIGUSR1/SIGUSR2")

STEPS = 8  # one epoch of 8 batches
SIGNAL_AT = 3  # the warning arrives after the third step: mid-epoch


def build(root, out, callbacks=()):
    """The same module, data and trainer in the stopped process, the resumed one and the straight one."""
    pl.seed_everything(7, workers=True)
    dm = make_datamodule(root, batch_size=4)
    module = lit_module(tiny_net(), dm, optimizer={"lr": 1e-3, "scale_lr": False},
                        scheduler={"name": "linear", "warmup_steps": 2}, output_dir=str(out))
    trainer = make_trainer(out, max_epochs=1, limit_train_batches=STEPS, limit_val_batches=0,
                           callbacks=list(callbacks))
    return module, dm, trainer


CHILD = textwrap.dedent(f"""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    import pytorch_lightning as pl
    from omegaconf import OmegaConf
    from test_module import INPUT_SIZE
    from test_requeue import build
    from rsn_lightning.training.job_record import TrainingJobRecord
    from rsn_lightning.training.requeue import RequeueOnSignal

    root, out, marker = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    class WarnAt(pl.Callback):
        # SLURM's warning, as `--signal=USR2@120` delivers it: a real signal to this process, mid-epoch
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == {SIGNAL_AT}:
                os.kill(os.getpid(), signal.SIGUSR2)

    # the requeue command stands in for `scontrol requeue {{job_id}}`: it appends the job id to the marker
    command = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))", marker,
               "{{job_id}}"]
    stop = RequeueOnSignal(out / "checkpoints", requeue_command=command)
    cfg = OmegaConf.create({{"paths": {{"output_dir": str(out)}}, "monitor": "val/AP",
                            "data": {{"input_size": list(INPUT_SIZE)}}, "model": {{"net": {{"name": "rsn"}}}}}})
    with TrainingJobRecord(cfg) as record:
        module, dm, trainer = build(root, out, [WarnAt(), stop, record.callback])
        trainer.fit(module, datamodule=dm)
        record.done({{}}, None)
    print("after the job")
""")


def test_sigusr2_saves_at_that_step_records_requeued_requeues_once_and_resumes_exactly(synthetic_root, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "requeued.txt"
    script = tmp_path / "warned_job.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    # the same threads as this process (OMP_NUM_THREADS changes the float sums): the runs compare bit for bit
    env.update(PYTHONHASHSEED="0", SLURM_JOB_ID="4242")
    proc = subprocess.run([sys.executable, str(script), str(synthetic_root), str(out), str(marker)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "after the job" in proc.stdout  # stopping for a requeue is not an error

    last = out / "checkpoints" / "last.ckpt"
    raw = torch.load(last, map_location="cpu", weights_only=True)
    assert raw["global_step"] == SIGNAL_AT
    record = json.loads((out / "job_result.json").read_text())
    assert record["status"] == "requeued" and record["error"] is None
    assert (record["checkpoint"], record["requeued_at_step"]) == (str(last), SIGNAL_AT)
    assert marker.read_text() == "4242\n"  # requeued exactly once, with SLURM's job id

    # the requeued start resumes from that step and ends where an uninterrupted run ends
    module, dm, trainer = build(synthetic_root, out, [requeue.RequeueOnSignal(out / "checkpoints")])
    start = {}

    class RecordStart(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            start.setdefault("step", trainer.global_step)

    trainer.callbacks.append(RecordStart())
    trainer.fit(module, datamodule=dm, ckpt_path=str(last))
    assert (start["step"], trainer.global_step) == (SIGNAL_AT, STEPS)

    straight, dm, trainer = build(synthetic_root, tmp_path / "straight")
    trainer.fit(straight, datamodule=dm)
    for (name, a), (_, b) in zip(straight.net.state_dict().items(), module.net.state_dict().items()):
        assert torch.equal(a, b), f"{name} differs from the uninterrupted run"


def test_a_signal_outside_training_goes_to_the_previous_handler_and_it_owns_the_requeue(tmp_path):
    """Submitit installs its USR2 handler before the job runs: outside training it still gets the signal, and
    after a requeue stop it is the one that requeues (our command does not run)."""
    seen = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
    try:
        assert requeue.install(["SIGUSR1", "USR2"])
        os.kill(os.getpid(), signal.SIGUSR2)  # nobody is training: forwarded
        assert seen == [signal.SIGUSR2]
        marker = tmp_path / "ran"
        request = requeue.RequeueRequested(signal.SIGUSR2, "last.ckpt", 3, ["touch", str(marker)])
        requeue.requeue(request)
        assert seen == [signal.SIGUSR2, signal.SIGUSR2] and not marker.exists()
        requeue.uninstall()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL and signal.getsignal(signal.SIGUSR2) is not None
        assert signal.getsignal(signal.SIGUSR2) is not requeue._on_signal
    finally:
        requeue.uninstall()
        signal.signal(signal.SIGUSR2, before)


def test_requeue_names_the_array_task_and_does_nothing_without_slurm(monkeypatch, tmp_path):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    marker = tmp_path / "ran"
    request = requeue.RequeueRequested(signal.SIGUSR1, "last.ckpt", 3, ["touch", str(marker)])
    assert requeue.requeue(request) == "nobody" and not marker.exists()
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "100")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert requeue.slurm_job_id() == "100_7"
    with pytest.raises(ValueError, match="callbacks.requeue.signals"):
        requeue.signal_number("SIGNOPE")


class RecordingPort:
    """A listening socket that counts the connections made to it (the wandb probe's urlopen)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1


@pytest.mark.parametrize("rank_env", [{"RANK": "1"}, {"SLURM_PROCID": "3"}, {"SLURM_PROCID": "0", "LOCAL_RANK": "2"},
                                      {"NODE_RANK": "1", "LOCAL_RANK": "0"}])
def test_only_global_rank_zero_probes_the_wandb_server(monkeypatch, tmp_path, rank_env):
    port = RecordingPort()
    try:
        for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("WANDB_BASE_URL", port.url)
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key: rank 0 would go online, so it probes
        for key, value in rank_env.items():
            monkeypatch.setenv(key, value)
        wandb_logger(save_dir=str(tmp_path / "other"), connect_timeout_s=30)
        assert port.connections() == 0

        # rank 0 does probe (the server never answers: it goes offline after the timeout)
        for key in rank_env:
            monkeypatch.setenv(key, "0")
        logger = wandb_logger(save_dir=str(tmp_path / "zero"), connect_timeout_s=0.5)
        assert port.connections() == 1
        assert logger._offline
    finally:
        port.sock.close()



class WarnOnceAt(pl.Callback):
    """In a job run by rsn-train: SLURM's warning as a real SIGUSR2 to the job's process at ``step``, on the
    first start only (a resumed start begins after that step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR2)


@pytest.mark.slow  # two starts of rsn-train: 43 to 71 s on this shared 2-core machine
def test_rsn_train_under_submitit_is_requeued_once_by_submitit_and_resumes(tmp_path):
    """The real chain: rsn-train -m through submitit's local launcher, whose USR2 handler is the one installed
    before the job runs; at the signal the job saves last.ckpt, and submitit requeues it (exit code 144 to its
    local controller, which starts the job again), once; the second start resumes from that checkpoint."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="launcher plugins: the dev extra")
    sweep = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RSN_", "SLURM_"))}
    # SLURM_RESTART_COUNT as on a SLURM requeue (submitit's local controller sets none): the first start finds no
    # checkpoint and trains from scratch, the second resumes (requeued_checkpoint)
    env.update(OMP_NUM_THREADS="1", NETRC=str(tmp_path / "no-netrc"), SLURM_RESTART_COUNT="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]))
    overrides = [
        "experiment=quickstart", "logger=csv", "callbacks=[model_checkpoint,requeue]", "test=false",
        f"paths.root_dir={tmp_path}", "data.synthetic.num_train=24", "data.synthetic.num_val=4",
        "data.batch_size=4", "data.input_size=[64,96]", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
        "+trainer.enable_progress_bar=false", "+trainer.num_sanity_val_steps=0",
        "+callbacks.warn._target_=test_requeue.WarnOnceAt", f"+callbacks.warn.step={SIGNAL_AT}",
        "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}", "model.optimizer.lr=1e-3",
    ]
    proc = subprocess.run([str(Path(sys.executable).parent / "rsn-train"), "-m", *overrides], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = sweep / "0"
    train_log = (job / "train.log").read_text()  # both starts' logs, submitit's included
    assert train_log.count("[submitit][INFO] - Requeued job") == 1, train_log[-3000:]  # submitit's requeue, once
    assert "requeue left to the handler installed before training (SignalHandler.checkpoint_and_try_requeue)" \
        in train_log
    assert train_log.count(f"resuming from {job / 'checkpoints' / 'last.ckpt'}") == 1
    assert json.loads((job / "job_result.json").read_text())["status"] == "ok"  # the second start finished it
    assert [row["status"] for row in load_summary(sweep)] == ["ok"]
    saved = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1  # its one epoch, once
    assert saved["global_step"] > SIGNAL_AT
