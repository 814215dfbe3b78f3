"""Which checkpoint rsn-train evaluates at its end (``eval_checkpoint: last | best``).

``last`` is the authors' reporting: their numbers are those of the final iteration
(caiyuanhao1998/RSN exps/*/test.py ``-i iter_num``, the last saved ``iter-96000.pth``). ``best`` takes
the checkpoint with the best validation metric, which is optimistic when the validation split is
also the split reported on (it picks an epoch with the numbers it then reports). The best checkpoint
is saved either way (``checkpoints/best_ap_epochNNN.ckpt``).
"""

from __future__ import annotations

from pathlib import Path

EVAL_CHECKPOINTS = ("last", "best")


def eval_checkpoint(trainer, choice: str, trained: bool, ckpt_path: str | None) -> tuple[str | None, str]:
    """(the ``ckpt_path`` to give ``trainer.validate``, what it is in words for the report's title).

    With ``last`` after training, ``last.ckpt`` is rewritten with the weights training ended with:
    Lightning's own ``last.ckpt`` is only as recent as the last validation or step save, which is older
    when the final epochs were not validated.
    """
    if choice not in EVAL_CHECKPOINTS:
        raise ValueError(f"eval_checkpoint must be one of {EVAL_CHECKPOINTS}, got {choice!r}")
    if not trained:
        return ckpt_path, Path(ckpt_path).name if ckpt_path else "untrained weights"
    callback = trainer.checkpoint_callback
    if callback is None:
        return None, "the trained weights in memory"
    if choice == "best":
        if callback.best_model_path:
            return callback.best_model_path, "best-on-val checkpoint"
        return None, "the trained weights in memory"
    last = callback.last_model_path or str(Path(callback.dirpath) / "last.ckpt")
    trainer.save_checkpoint(last)
    return last, "last checkpoint"
