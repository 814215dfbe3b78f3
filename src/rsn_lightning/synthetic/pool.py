"""The worker processes that draw the synthetic images in parallel, and the gathering of their results."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading

import cv2

from rsn_lightning.synthetic.sample import SPLIT_CODE, make_image


def collect(pairs, results, progress, total) -> None:
    """Gather (task, result) pairs, arriving in any order, into per-split lists in task order."""
    pending = {}
    for done, (task, result) in enumerate(pairs, 1):
        pending[(task[1], task[2])] = result
        if progress is not None:
            progress(done, total)
    for split, index in sorted(pending, key=lambda key: (SPLIT_CODE[key[0]], key[1])):
        image, anns, dets = pending[(split, index)]
        images_, anns_, dets_ = results[split]
        images_.append(image)
        anns_.extend(anns)
        dets_.extend(dets)


def run_workers(tasks, workers: int, results, progress) -> None:
    """Draw the images in `workers` fresh Python processes, each taking every workers-th task.

    Plain subprocesses rather than multiprocessing: a forked child can deadlock on OpenCV's or torch's
    thread pools inherited from the parent, and spawn re-imports the caller's __main__ (which breaks
    for unguarded scripts and stdin), and a multiprocessing pool hangs when a worker dies.
    Each worker reports one JSON line per image; JSON round-trips Python floats exactly, so the
    files are byte-identical to a single-process run.
    """
    env = dict(os.environ)
    # the workers must import this very package, also from a source checkout that is not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    code = "from rsn_lightning.synthetic.pool import worker_main; worker_main()"
    procs = []
    lines: queue.Queue = queue.Queue()

    def pump(proc):
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    try:
        for w in range(workers):
            # stderr to a file: a chatty worker must never block on a full pipe
            err = tempfile.TemporaryFile("w+")
            proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, env=env, text=True)
            proc.stdin.write(json.dumps(tasks[w::workers]))
            proc.stdin.close()
            procs.append((proc, err))
            threading.Thread(target=pump, args=(proc,), daemon=True).start()

        def pairs():
            finished = 0
            while finished < workers:
                line = lines.get()
                if line is None:
                    finished += 1
                    continue
                task, image, anns, dets = json.loads(line)
                yield task, (image, anns, dets)

        collect(pairs(), results, progress, len(tasks))
        for proc, err in procs:
            if proc.wait() != 0:
                err.seek(0)
                raise RuntimeError(f"synthetic data worker failed (exit {proc.returncode}):\n{err.read()[-3000:]}")
        got = sum(len(images) for images, _, _ in results.values())
        if got != len(tasks):  # pragma: no cover - a worker exiting 0 early
            raise RuntimeError(f"synthetic data workers returned {got} of {len(tasks)} images")
    finally:
        for proc, err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()


def worker_main() -> None:
    """Entry of a worker process: tasks as JSON on stdin, one JSON result line per image on stdout."""
    cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV's own threads would only contend
    for task in json.loads(sys.stdin.read()):
        image, anns, dets = make_image(task)
        sys.stdout.write(json.dumps([task, image, anns, dets], separators=(",", ":")) + "\n")
        sys.stdout.flush()
