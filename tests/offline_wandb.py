"""What an offline wandb run recorded, read from its run file: name, group, tags, exit code and summary."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def wandb_records(path: Path):
    """The records of an offline wandb run file (``run-<id>.wandb``): a W&B header, then LevelDB-log framing
    (32 KiB blocks of [crc32, length, type] + payload) around protobuf ``Record`` messages."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunk = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def wandb_runs(folder: Path) -> list[dict]:
    runs = []
    for path in sorted(folder.glob("**/wandb/offline-run-*/run-*.wandb")):
        run = {"folder": path.parents[2]}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(name=record.run.display_name, group=record.run.run_group, job_type=record.run.job_type,
                           tags=list(record.run.tags))
            elif kind == "exit":
                run["exit_code"] = record.exit.exit_code
            elif kind == "summary":
                run.update({item.key: json.loads(item.value_json) for item in record.summary.update if item.key})
        runs.append(run)
    return runs
