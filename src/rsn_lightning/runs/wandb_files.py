"""wandb's run files read without wandb's service, an account or the network: the config and the final
summary of a run (offline or synced), from its ``run-<id>.wandb`` file."""

from __future__ import annotations

import json
from pathlib import Path


def _wandb_log_records(path: Path):
    """The protobuf records of a wandb run file (``run-<id>.wandb``: a LevelDB-style log of 32 KiB
    blocks after a 7-byte ``:W&B`` header; each chunk has a 7-byte header of crc, length and type
    full/first/middle/last). Offline runs keep their config and summary only there."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a wandb run file (no :W&B header)")
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # a run still being written: stop at its last whole record
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def read_wandb_run_file(path) -> tuple[str, dict, dict]:
    """(run name, config, final summary) of a wandb run file, e.g. an offline run's
    ``wandb/offline-run-<time>-<id>/run-<id>.wandb``, without an account or the network."""
    path = Path(path)
    name, config, summary = path.stem.removeprefix("run-"), {}, {}
    for record in _wandb_log_records(path):
        kind = record.WhichOneof("record_type")
        items = {"run": lambda r: r.run.config.update, "config": lambda r: r.config.update,
                 "summary": lambda r: r.summary.update}.get(kind)
        if items is None:
            continue
        if kind == "run" and record.run.display_name:
            name = record.run.display_name
        target = summary if kind == "summary" else config
        for item in items(record):
            key = item.key or "/".join(item.nested_key)
            if not key.startswith("_"):
                target[key] = json.loads(item.value_json)
    return name, config, summary
