"""Dataset indexes built once per node and reused: the parsed, checked records of an annotation file.

Indexing a large set is slow and hits the filesystem hard: COCO train's annotation file is parsed and, with
``data.check_images``, every one of its 57k images has its header read. Under DDP every rank builds the same
datasets in its own ``setup``, so 8 ranks on a node would each do it, all at once, on a shared filesystem.
``load_or_build`` lets the first process build the index, under a file lock (``fcntl.flock``, as
``PoseDataModule.prepare_data`` does for the synthetic set), and write it to the cache; the other ranks wait
for the lock and read it, and so do later runs.

Where: ``$RSN_CACHE_DIR/index`` when RSN_CACHE_DIR is set, else ``$XDG_CACHE_HOME/rsn_lightning/index``
(``~/.cache/rsn_lightning/index``). Not beside the data, which is often on a read-only or shared mount, and
not in a run's output folder, where the next run would not find it. One file per annotation file and the
settings that change its records (image folders, check_images, clip_boxes, detection file and threshold,
keypoint count, ...): a changed setting is another entry, a changed file overwrites its entry, so the folder
holds no stale versions and deleting it is always safe (the next run rebuilds).

Never stale: each entry records the size, modification and status-change times (ns) of the files it was
built from (annotation, detections) and is used only while all of them still match; a file written less
than ``RACY_SECONDS`` ago is indexed but not cached, since another write within the filesystem's timestamp
granularity could leave its times unchanged. Images are deliberately not re-checked when the index is read
(that is the cost it saves): an image damaged or removed after indexing is caught when it is decoded, and
its sample is replaced by a grey image with zero target weights and logged (``TopDownDataset``).

Trust boundary: the entries are pickles, which run code when read. Only this library writes them, in a
folder created private to the user (mode 0700), and an entry is read only when the current user owns it; do
not point RSN_CACHE_DIR at a folder others can write to.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the records or the entry layout change: older entries are then rebuilt
RACY_SECONDS = 2.0  # coarser than the timestamps of any common filesystem (FAT's 2 s included)

_warned: set[str] = set()


def cache_dir() -> Path:
    """The folder of the index entries (see the module docstring)."""
    root = os.environ.get("RSN_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "index"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "rsn_lightning" / "index"


def fingerprint(files) -> list[tuple[str, int, int, int]]:
    """(absolute path, size, mtime ns, ctime ns) of each file: a changed file changes its entry."""
    out = []
    for f in files:
        st = os.stat(f)
        out.append((os.path.abspath(f), st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return out


def entry_path(what: str, files, settings: dict) -> Path:
    """The entry of ``files`` indexed with ``settings``; paths as given and absolute, since records hold the
    image paths as they were given (a relative folder resolves against the working directory)."""
    key = json.dumps({"format": FORMAT, "what": what, "files": [[str(f), os.path.abspath(f)] for f in files],
                      "cwd": os.getcwd(), "settings": settings}, sort_keys=True, default=str)
    stem = Path(str(files[0])).stem[:40]
    return cache_dir() / f"{stem}-{what}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.pkl"


def _read(path: Path, prints) -> dict | None:
    try:
        if path.stat().st_uid != os.getuid():
            return None
        with path.open("rb") as f:
            entry = pickle.load(f)  # noqa: S301 - written by this library only, in the user's own folder
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("fingerprint") != prints:
        return None
    return entry["payload"]


def _write(path: Path, prints, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"format": FORMAT, "fingerprint": prints, "payload": payload}, f,
                        protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # readers see the old entry or the whole new one, never half a file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _warn_once(message: str, *args) -> None:
    text = message % args
    if text not in _warned:
        _warned.add(text)
        log.warning(text)


def load_or_build(what: str, files, settings: dict, build: Callable[[], dict], name: str) -> dict:
    """``build()``'s payload for ``files`` with ``settings``, read from the cache when an entry built from the
    same files (unchanged since) exists; otherwise built, under a lock that makes the node's other processes
    wait for it and then read it, and cached. A cache that cannot be written only costs the rebuild."""
    files = [str(f) for f in files]
    try:
        prints = fingerprint(files)
    except OSError:
        return build()  # a missing file: the build's reading it names the file and the setting
    path = entry_path(what, files, settings)
    payload = _read(path, prints)
    if payload is not None:
        log.info("%s: read the index of %s from %s (built when it was last changed; delete the file to rebuild)",
                 name, files[0], path)
        return payload
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = (path.parent / f"{path.name}.lock").open("w")
    except OSError as err:
        _warn_once("dataset index cache %s cannot be used (%s): every process indexes the data itself; set "
                   "RSN_CACHE_DIR to a writable folder", path.parent, err)
        return build()
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as err:  # some network filesystems refuse locks: build without sharing
            _warn_once("dataset index cache %s: no file lock (%s): processes may index the same data at once",
                       path.parent, err)
        payload = _read(path, prints)  # another process built it while this one waited
        if payload is not None:
            log.info("%s: read the index of %s from %s (built by another process)", name, files[0], path)
            return payload
        start = time.perf_counter()
        payload = build()
        now = time.time()
        if any(now - mtime_ns / 1e9 < RACY_SECONDS for _, _, mtime_ns, _ in prints):
            log.debug("%s: not caching the index of %s: written in the last %g s", name, files[0], RACY_SECONDS)
            return payload
        try:
            _write(path, prints, payload)
        except OSError as err:
            _warn_once("dataset index cache %s cannot be written (%s): every process indexes the data itself",
                       path.parent, err)
            return payload
        log.info("%s: indexed %s in %.1f s; the index is cached in %s for the other processes and later runs",
                 name, files[0], time.perf_counter() - start, path)
        return payload


def pack_records(records: list[dict]) -> dict:
    """Records as columns: one array per field whose values are arrays of one shape (joints, center, ...),
    a list otherwise. Smaller and faster to read than 150k small arrays, and the records rebuilt from it
    are views of one array each, whose pages forked loader workers share."""
    if not records:
        return {"n": 0, "columns": {}}
    keys = list(records[0])
    if any(list(r) != keys for r in records):
        return {"n": len(records), "rows": records}
    columns = {}
    for k in keys:
        values = [r[k] for r in records]
        first = values[0]
        if isinstance(first, np.ndarray) and all(isinstance(v, np.ndarray) and v.shape == first.shape
                                                 and v.dtype == first.dtype for v in values):
            columns[k] = np.stack(values)
        else:
            columns[k] = values
    return {"n": len(records), "columns": columns}


def unpack_records(packed: dict) -> list[dict]:
    if "rows" in packed:
        return packed["rows"]
    columns = packed["columns"]
    return [{k: col[i] for k, col in columns.items()} for i in range(packed["n"])]
