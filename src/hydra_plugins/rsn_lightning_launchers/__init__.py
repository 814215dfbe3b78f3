"""rsn_lightning's Hydra launchers (Hydra instantiates launchers only from the ``hydra_plugins`` namespace).

``SlurmLauncher``: hydra-submitit-launcher's, which ``conf/hydra/launcher/slurm.yaml`` selects, with two
changes: a sweep that SLURM refuses to take (sbatch's error, e.g. GPUs asked of a CPU partition) or a machine
without SLURM's commands end the command with a message naming the ``hydra.launcher.*`` key to change and
exit status 2, not a traceback (``rsn_lightning.training.slurm_submit``); and each SLURM job registers the
configs' resolvers (``rsn_lightning.cli.common.register_resolvers``) before it composes its config. Only
defined when the launcher plugin is installed (the ``slurm`` extra): Hydra imports every module here at each
start.
"""

from __future__ import annotations

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher
except ImportError:  # no slurm extra: nothing to define
    _SubmititSlurmLauncher = None

if _SubmititSlurmLauncher is not None:

    class SlurmLauncher(_SubmititSlurmLauncher):
        def __call__(self, *args, **kwargs):
            # a SLURM job of the sweep: it composes its config again, with the resolvers the configs use
            from rsn_lightning.cli.common import register_resolvers

            register_resolvers()
            return super().__call__(*args, **kwargs)

        def launch(self, job_overrides, initial_job_idx):
            import subprocess
            import sys

            from submitit.core.utils import FailedJobError

            from rsn_lightning.training.slurm_submit import no_slurm_message, refusal_message

            try:
                return super().launch(job_overrides, initial_job_idx)
            except FailedJobError as err:
                cause = err.__cause__
                if not (isinstance(cause, subprocess.CalledProcessError) and "sbatch" in str(cause.cmd)):
                    raise  # a job that ran and failed: not a refused submission
                message = refusal_message(cause.stderr or str(err), self.params)
            except RuntimeError as err:
                if '"srun"' not in str(err):  # submitit's AutoExecutor: 'Could not detect "srun"'
                    raise
                message = no_slurm_message(err)
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(2)
