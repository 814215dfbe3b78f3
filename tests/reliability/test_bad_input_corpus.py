"""The bad-input corpus: malformed inputs and faults, each run through the real console scripts
(subprocess, cwd=tmp_path) or the documented Python API, each asserting its outcome class:

- "clear error": the run stops before any work with a message naming the file, field or key (no
  traceback for the console scripts);
- "skip-and-count": the bad part is left out, counted and reported, the rest goes on;
- "correct result": the output is right despite the input.

Anything else is recorded as "raw traceback", "silently wrong" or "lost data", and the totals by class
are printed at the end of the session (tests/reliability/conftest.py). Inputs are tiny; the console
runs share one generated data set, one messy prediction folder and one bad-data training run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rsn_lightning.data.coco import CocoKeypointDataset
from rsn_lightning.data.transforms import AugmentConfig, TopDownTransform
from rsn_lightning.evaluation.coco_eval import coco_keypoint_stats
from rsn_lightning.keypoints import COCO_KEYPOINTS
from rsn_lightning.models.checkpoint import save_checkpoint
from rsn_lightning.models.rsn import RSN

CLEAR, SKIP, CORRECT = "clear error", "skip-and-count", "correct result"
RAW, WRONG, LOST = "raw traceback", "silently wrong", "lost data"
BIN = Path(sys.executable).parent
INPUT = (96, 128)


# ---------------------------------------------------------------------------------------------- helpers
def warned(call) -> tuple[object, str]:
    """(result, text of the warnings ``call`` emitted)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, " | ".join(str(w.message) for w in caught)


def outcome(record, name: str, expected: str, fn) -> None:
    """Run one case; an exception that escapes ``fn`` is a raw traceback."""
    detail = ""
    try:
        observed, detail = fn()
    except Exception as err:  # noqa: BLE001 - any escape is the finding itself
        observed, detail = RAW, f"{type(err).__name__}: {err}"
    record(name, expected, observed)
    assert observed == expected, f"{name}: {observed}; {str(detail)[-3000:]}"


def api_error(call, *names, types=(ValueError, OSError)):
    """(CLEAR, msg) when ``call`` raises one of ``types`` naming every ``names``; (RAW, msg) for another
    error; (None, result) when it returns."""
    try:
        result = call()
    except types as err:
        msg = str(err)
        return (CLEAR if all(n in msg for n in names) else RAW), f"{type(err).__name__}: {msg}"
    except Exception as err:  # noqa: BLE001
        return RAW, f"{type(err).__name__}: {err}"
    return None, result


# the child scripts build the module with the tests' lit_module (conf/model/rsn18.yaml's settings)
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1",
             "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "training"),
                                            *filter(None, [os.environ.get("PYTHONPATH")])])}


def cli(app: str, *args, cwd, timeout: int = 300, env=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([str(BIN / app), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def cli_error(proc, *names):
    """CLEAR when the command failed with a message naming ``names`` and no traceback."""
    text = proc.stderr + proc.stdout
    if proc.returncode == 0:
        return None, text[-2000:]
    clear = "Traceback" not in text and all(n in text for n in names)
    return (CLEAR if clear else RAW), text[-3000:]


def train_args(root, out, *extra):
    return ["experiment=quickstart", f"data.root={root}", "data.synthetic=null", "trainer.max_epochs=1",
            "trainer.check_val_every_n_epoch=1", "callbacks.pictures.num_images=0", f"hydra.run.dir={out}",
            *extra]


def tiny_net(seed: int = 0) -> RSN:
    torch.manual_seed(seed)
    return RSN(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32).eval()


def jpeg_bytes(seed: int = 0, size=(96, 128)) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), (9, 9), 3)
    return cv2.imencode(".jpg", img)[1].tobytes()


def bit_flipped(data: bytes) -> bytes:
    """Header and end marker intact, entropy-coded body damaged."""
    b = bytearray(data)
    start = data.find(b"\xff\xda") + 40
    for i in range(start, len(b) - 10, 97):
        b[i] ^= 0xFF
    return bytes(b)


def body_cut_with_end_marker(data: bytes) -> bytes:
    sos = data.find(b"\xff\xda")
    return data[: sos + (len(data) - sos) // 2] + b"\xff\xd9"


def kps(x=60.0, y=50.0, n=17):
    return [v for i in range(n) for v in (x + 2 * i, y + 3 * i, 2)]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """One tiny network saved as a project checkpoint, shared by the checkpoint and prediction cases."""
    net = tiny_net()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", net)


@pytest.fixture(scope="module")
def gt_file(tmp_path_factory) -> Path:
    """A 2-image COCO ground truth with 3 people."""
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 200, "height": 200} for i in (1, 2)]
    anns = [{"id": j + 1, "image_id": im, "category_id": 1, "iscrowd": 0, "area": 4000.0,
             "bbox": [40, 30, 60, 100], "num_keypoints": 17, "keypoints": kps(50 + 5 * j, 40)}
            for j, im in enumerate((1, 1, 2))]
    path = tmp_path_factory.mktemp("gt") / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [COCO_KEYPOINTS.coco_category()]}))
    return path


def perfect_results(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
            for a in gt["annotations"]]


@pytest.fixture(scope="module")
def messy_predict(ckpt, tmp_path_factory):
    """One rsn-predict run over a folder with an unreadable file, a corrupt-inside JPEG, a broken video,
    a real video, 1.jpg beside a.jpg, and detections with zero-size and NaN boxes."""
    work = tmp_path_factory.mktemp("predict")
    folder = work / "photos"
    folder.mkdir()
    for name in ("1.jpg", "a.jpg", "b.jpg"):
        (folder / name).write_bytes(jpeg_bytes(len(name)))
    (folder / "unreadable.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "corrupt.jpg").write_bytes(bit_flipped(jpeg_bytes(7)))
    (folder / "broken.mp4").write_text("not a video")
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, INPUT)
    for i in range(2):
        writer.write(np.full((INPUT[1], INPUT[0], 3), 60 + 40 * i, np.uint8))
    writer.release()
    dets = {"1.jpg": [[10, 10, 40, 80, 0.9], [5, 5, 0, 0, 0.8]],
            "a.jpg": [[10, 10, 40, 80, 0.9], [float("nan"), 5, 30, 30, 0.7]],
            "b.jpg": [[10, 10, 40, 80, 0.9]], "clip.mp4#0": [[0, 0, 96, 128]], "clip.mp4#1": [[0, 0, 96, 128]]}
    # Python's json writes the bare NaN token, as a buggy detector export does
    (work / "dets.json").write_text(json.dumps(dets))
    out = work / "out"
    proc = cli("rsn-predict", f"ckpt_path={ckpt}", f"input={folder}", f"detections={work / 'dets.json'}",
               "device=cpu", f"hydra.run.dir={out}", cwd=work)
    return proc, out


@pytest.fixture(scope="module")
def bad_data_root(synthetic_root, tmp_path_factory) -> Path:
    """The session's synthetic set with bad annotations added to train and val: collapsed joints, 1e30
    coordinates, the wrong keypoint count, keypoints as strings, and a corrupt-inside JPEG."""
    root = tmp_path_factory.mktemp("bad") / "root"
    shutil.copytree(synthetic_root, root)
    for split in ("train", "val"):
        path = root / f"annotations/person_keypoints_{split}.json"
        coco = json.loads(path.read_text())
        im = coco["images"][0]
        base = dict(coco["annotations"][0], image_id=im["id"], iscrowd=0, bbox=[40, 40, 80, 160], area=9000.0)
        collapsed = [v for _ in range(17) for v in (100.0, 100.0, 2)]
        huge = kps(60, 60)
        huge[0:2] = [1e30, 1e30]
        huge[15:17] = [1e30, 5.0]
        bad = [dict(base, keypoints=collapsed), dict(base, keypoints=huge), dict(base, keypoints=kps(n=16)),
               dict(base, keypoints=[str(v) for v in kps()])]
        for i, b in enumerate(bad):
            b["id"] = 10**9 + i
        coco["annotations"] += bad
        path.write_text(json.dumps(coco))
        corrupt = root / "images" / split / coco["images"][1]["file_name"]
        corrupt.write_bytes(bit_flipped(corrupt.read_bytes()))
    return root


@pytest.fixture(scope="module")
def bad_data_run(bad_data_root, tmp_path_factory):
    """rsn-train on the bad data, half-body crops on every sample, then resumed for a second epoch."""
    work = tmp_path_factory.mktemp("badrun")
    out = work / "run"
    first = cli("rsn-train", *train_args(bad_data_root, out, "+data.augment.prob_half_body=1.0"), cwd=work)
    metrics_after_first = (out / "csv" / "metrics.csv").read_text() if (out / "csv/metrics.csv").is_file() else ""
    second = cli("rsn-train", *train_args(bad_data_root, out, "+data.augment.prob_half_body=1.0",
                                          "trainer.max_epochs=2", "ckpt_path=last"), cwd=work)
    return first, second, out, metrics_after_first


# ---------------------------------------------------------------------------------------------- config
CONFIG_CASES = [
    ("negative batch size", ["data.batch_size=-4"], ["data.batch_size"]),
    ("zero input size", ["data.input_size=[0,0]"], ["data.input_size"]),
    ("input size not a multiple of 32", ["data.input_size=[100,128]"], ["data.input_size"]),
    ("unknown decode mode", ["codec.decode=foo"], ["codec.decode"]),
    ("keypoint count unlike the data", ["model.net.num_keypoints=16"], ["model.net.num_keypoints"]),
    ("zero learning rate", ["model.optimizer.lr=0"], ["model.optimizer.lr"]),
    ("zero epochs", ["trainer.max_epochs=0"], ["trainer.max_epochs"]),
    ("negative loader workers", ["data.num_workers=-1"], ["data.num_workers"]),
    ("even target kernel", ["codec.kernels=[4,3,3,3,3]"], ["codec.kernels"]),
    ("huge width multiplier", ["model.net.width_mult=4000"], ["model.net.width_mult"]),
    ("missing checkpoint to resume", ["ckpt_path=/nonexistent/run.ckpt"], ["ckpt_path", "/nonexistent/run.ckpt"]),
    ("ckpt_path=last without the run folder", ["ckpt_path=last"], ["ckpt_path=last", "last.ckpt"]),
    ("checkpoint folder under a file", ["callbacks.model_checkpoint.dirpath=__FILE__/ckpts"],
     ["callbacks.model_checkpoint.dirpath"]),
]


def run_concurrently(jobs: dict) -> dict:
    """{name: (app, args, cwd)} -> {name: CompletedProcess}; 3 at a time (start-up is mostly imports)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(cli, app, *args, cwd=cwd) for name, (app, args, cwd) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def config_runs(tmp_path_factory):
    """rsn-train with each bad value (a data root that does not exist: any data access would show)."""
    jobs = {}
    for name, overrides, _ in CONFIG_CASES:
        work = tmp_path_factory.mktemp("config")
        (work / "a_file").write_text("x")
        overrides = [o.replace("__FILE__", str(work / "a_file")) for o in overrides]
        jobs[name] = ("rsn-train", train_args(work / "no_data_here", work / "run", *overrides), work)
    return {name: (proc, jobs[name][2] / "run") for name, proc in run_concurrently(jobs).items()}


@pytest.mark.parametrize("name,overrides,names", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_value_is_refused_at_the_door(name, overrides, names, config_runs, record_outcome):
    def run():
        proc, out = config_runs[name]
        verdict, text = cli_error(proc, *names)
        if verdict is None:
            return WRONG, text
        # before any work: no checkpoint folder was made
        if verdict == CLEAR and (out / "checkpoints").exists():
            return RAW, "work started"
        return verdict, text

    outcome(record_outcome, f"config: {name}", CLEAR, run)


# ---------------------------------------------------------------------------------------------- checkpoints
def _write_bad_checkpoint(kind: str, path: Path, good: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "cut short":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "malicious pickle":
        import pickle

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {path.parent / 'PWNED'}",))

        path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    elif kind == "tampered arch":
        ckpt = torch.load(good, weights_only=True)
        ckpt["arch"]["width_mult"] = 4000.0
        torch.save(ckpt, path)
    elif kind == "NaN weights":
        ckpt = torch.load(good, weights_only=True)
        for v in ckpt["state_dict"].values():
            if v.is_floating_point():
                v.fill_(float("nan"))
        torch.save(ckpt, path)


CKPT_CASES = [("empty", ["empty"]), ("random bytes", ["not a torch checkpoint"]), ("cut short", ["bad.pth"]),
              ("malicious pickle", ["refused"]), ("tampered arch", ["width_mult"]), ("NaN weights", ["NaN"])]


@pytest.fixture(scope="module")
def checkpoint_runs(ckpt, tmp_path_factory):
    """rsn-predict with each bad checkpoint."""
    jobs = {}
    for kind, _ in CKPT_CASES:
        work = tmp_path_factory.mktemp("ckpt_case")
        bad = work / "bad.pth"
        _write_bad_checkpoint(kind, bad, ckpt)
        (work / "p.jpg").write_bytes(jpeg_bytes())
        jobs[kind] = ("rsn-predict", [f"ckpt_path={bad}", f"input={work / 'p.jpg'}", "device=cpu",
                                      f"hydra.run.dir={work / 'out'}"], work)
    return {kind: (proc, jobs[kind][2]) for kind, proc in run_concurrently(jobs).items()}


@pytest.mark.parametrize("kind,names", CKPT_CASES, ids=[c[0] for c in CKPT_CASES])
def test_bad_checkpoint_is_refused_by_rsn_predict(kind, names, checkpoint_runs, record_outcome):
    def run():
        proc, work = checkpoint_runs[kind]
        out = work / "out"
        if (work / "PWNED").exists():
            return WRONG, "the pickle ran code"
        if "weights_only=False" in proc.stderr or "weights_only` set to `False" in proc.stderr:
            return RAW, "suggests weights_only=False"
        verdict, text = cli_error(proc, *names)
        if verdict is None:
            return WRONG, f"exit 0; results: {(out / 'results.json').read_text()[:300]}"
        if verdict == CLEAR and (out / "results.json").exists():
            return WRONG, "results written"
        return verdict, text

    outcome(record_outcome, f"checkpoint: {kind}", CLEAR, run)


# ---------------------------------------------------------------------------------------------- prediction
def _predict_results(messy_predict):
    proc, out = messy_predict
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    results = json.loads((out / "results.json").read_text(),
                         parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"bare {c} token")))
    skipped = json.loads((out / "skipped.json").read_text()) if (out / "skipped.json").is_file() else []
    return proc, results, skipped


@pytest.mark.parametrize("item", ["unreadable.jpg", "corrupt.jpg", "broken.mp4", "zero-size box", "NaN box"])
def test_rsn_predict_skips_and_lists_unusable_inputs(item, messy_predict, record_outcome):
    def run():
        proc, results, skipped = _predict_results(messy_predict)
        text = json.dumps(skipped)
        listed = ("['1.jpg'] box #1" in text) if item == "zero-size box" else ("['a.jpg'] box #1" in text) \
            if item == "NaN box" else any(Path(s["file_name"]).name == item for s in skipped)
        in_summary = f"skipped {len(skipped)}" in proc.stdout
        people = {r["file_name"]: 0 for r in results}
        for r in results:
            people[r["file_name"]] += 1
        # the other images and the real video are still predicted, one person per valid box
        rest_ok = people.get("1.jpg") == 1 and people.get("a.jpg") == 1 and people.get("b.jpg") == 1 \
            and people.get("clip.mp4#1") == 1
        return (SKIP if listed and in_summary and rest_ok else WRONG), (proc.stdout, skipped, people)

    outcome(record_outcome, f"predict: {item}", SKIP, run)


def test_rsn_predict_gives_unique_ids_and_strict_json(messy_predict, record_outcome):
    def run():
        _, results, _ = _predict_results(messy_predict)
        by_file = {}
        for r in results:
            by_file.setdefault(r["file_name"], set()).add(r["image_id"])
        ids = [next(iter(v)) for v in by_file.values()]
        ok = all(len(v) == 1 for v in by_file.values()) and len(set(ids)) == len(ids) \
            and by_file["1.jpg"] == {1} and all(math.isfinite(v) for r in results for v in r["keypoints"])
        return (CORRECT if ok else WRONG), by_file

    outcome(record_outcome, "predict: unique image and frame ids, strict JSON", CORRECT, run)


# ---------------------------------------------------------------------------------------------- evaluation
def _bad_results(kind: str, gt: dict) -> list:
    res = perfect_results(gt)
    r = res[1]
    if kind == "all-NaN keypoints":
        r["keypoints"] = [float("nan")] * 51
    elif kind == "NaN score":
        r["score"] = float("nan")
    elif kind == "unknown category":
        r["category_id"] = 2
    elif kind == "keypoints as strings":
        r["keypoints"] = [str(v) for v in r["keypoints"]]
    elif kind == "wrong keypoint count":
        r["keypoints"] = r["keypoints"][:48]
    elif kind == "image id as text":
        r["image_id"] = "1"
    elif kind == "Inf keypoint":
        r["keypoints"][4] = float("inf")
    return res


EVAL_CASES = ["all-NaN keypoints", "NaN score", "unknown category", "keypoints as strings",
              "wrong keypoint count", "image id as text", "Inf keypoint"]


@pytest.mark.parametrize("kind", EVAL_CASES)
def test_coco_eval_rejects_unscorable_results(kind, gt_file, tmp_path, record_outcome):
    gt = json.loads(gt_file.read_text())
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_bad_results(kind, gt)))

    def run():
        verdict, result = api_error(lambda: coco_keypoint_stats(gt_file, path), "result #1")
        if verdict is None:
            return WRONG, f"AP {result['AP']:.3f} with no error"
        return verdict, result

    outcome(record_outcome, f"eval: {kind}", CLEAR, run)


def test_coco_eval_can_drop_bad_entries_with_a_count(gt_file, record_outcome):
    gt = json.loads(gt_file.read_text())

    def run():
        good_only = coco_keypoint_stats(gt_file, [r for i, r in enumerate(perfect_results(gt)) if i != 1])
        dropped, text = warned(lambda: coco_keypoint_stats(gt_file, _bad_results("all-NaN keypoints", gt),
                                                           on_invalid="drop"))
        ok = dropped == good_only and dropped["AP"] < 1 and "dropped 1 of 3" in text
        return (CORRECT if ok else WRONG), (dropped, good_only, text)

    outcome(record_outcome, "eval: drop option counts and leaves out bad entries", CORRECT, run)


@pytest.mark.parametrize("kind", ["wrong keypoint count", "keypoints as strings"])
def test_unscorable_ground_truth_annotation_is_left_out(kind, gt_file, tmp_path, record_outcome):
    gt = json.loads(gt_file.read_text())
    extra = dict(gt["annotations"][0], id=99)
    extra["keypoints"] = kps(n=16) if kind == "wrong keypoint count" else [str(v) for v in kps()]
    bad_gt = dict(gt, annotations=gt["annotations"] + [extra])
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(bad_gt))

    def run():
        stats, text = warned(lambda: coco_keypoint_stats(path, perfect_results(gt)))
        ok = stats["AP"] == pytest.approx(1.0) and "left out 1 ground-truth" in text
        return (CORRECT if ok else WRONG), (stats, text)

    outcome(record_outcome, f"eval: ground truth with {kind}", CORRECT, run)


# ---------------------------------------------------------------------------------------------- data API
def _one_image_root(tmp_path, image_bytes: bytes, anns: list[dict]) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    (images / "p.jpg").write_bytes(image_bytes)
    for i, a in enumerate(anns):
        a.setdefault("id", i + 1)
        a.setdefault("image_id", 1)
        a.setdefault("category_id", 1)
        a.setdefault("bbox", [20, 20, 50, 90])
        a.setdefault("area", 4500.0)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "p.jpg", "width": 96, "height": 128}],
                               "annotations": anns, "categories": [COCO_KEYPOINTS.coco_category()]}))
    return ann, images


def _half_body_samples(ann, images, n: int):
    """(dataset, whether n half-body training samples of its first person are all finite)."""
    aug = AugmentConfig(prob_half_body=1.0)
    ds = CocoKeypointDataset(ann, images, TopDownTransform(INPUT, COCO_KEYPOINTS, True, aug))
    samples = [ds[(0, seed)] for seed in range(n)]
    return ds, all(np.isfinite(s["image"]).all() and np.isfinite(s["heatmaps"]).all() for s in samples)


def test_collapsed_joints_never_divide_by_zero_in_half_body_crops(tmp_path, record_outcome):
    collapsed = [v for _ in range(17) for v in (40.0, 60.0, 2)]
    ann, images = _one_image_root(tmp_path, jpeg_bytes(), [{"keypoints": collapsed}])

    def run():
        _, finite = _half_body_samples(ann, images, 20)
        return (CORRECT if finite else WRONG), ""

    outcome(record_outcome, "data: all joints on one point (half-body)", CORRECT, run)


def test_huge_coordinates_are_unlabelled_and_counted(tmp_path, record_outcome):
    huge = kps(30, 20)
    huge[0:2] = [1e30, 1e30]
    huge[3] = 1e30
    ann, images = _one_image_root(tmp_path, jpeg_bytes(), [{"keypoints": huge}])

    def run():
        ds, finite = _half_body_samples(ann, images, 10)
        counted = ds.skipped.joint_counts.get("beyond the image") == 2 and len(ds) == 1
        return (SKIP if finite and counted else WRONG), ds.skipped.joint_counts

    outcome(record_outcome, "data: 1e30 coordinates", SKIP, run)


@pytest.mark.parametrize("damage", ["bit flips", "body cut before a re-added end marker"])
def test_corrupt_inside_jpeg_is_never_trained_on(damage, tmp_path, record_outcome):
    data = jpeg_bytes()
    bad = bit_flipped(data) if damage == "bit flips" else body_cut_with_end_marker(data)
    ann, images = _one_image_root(tmp_path, bad, [{"keypoints": kps(30, 20)}])

    def run():
        ds = CocoKeypointDataset(ann, images, TopDownTransform(INPUT, COCO_KEYPOINTS, True))
        sample = ds[0]
        counted = list(ds.load_failures.values()) == [1]
        return (SKIP if counted and sample["target_weight"].sum() == 0 else WRONG), ds.load_failures

    outcome(record_outcome, f"data: JPEG with {damage}", SKIP, run)


def test_annotations_and_joints_are_counted_apart(tmp_path, record_outcome):
    nan_joints = kps(30, 20)
    nan_joints[0] = float("nan")
    anns = [{"keypoints": kps(30, 20)} for _ in range(3)] + [{"keypoints": nan_joints}] + \
           [{"keypoints": kps(n=16)}, {"keypoints": [0] * 51}]
    ann, images = _one_image_root(tmp_path, jpeg_bytes(), anns)

    def run():
        ds = CocoKeypointDataset(ann, images, TopDownTransform(INPUT, COCO_KEYPOINTS, False))
        s = ds.skipped
        ok = len(ds) == 4 and s.total == 2 and s.joints_total == 1
        return (SKIP if ok else WRONG), (s.counts, s.joint_counts)

    outcome(record_outcome, "data: annotations and joints counted apart", SKIP, run)


@pytest.mark.parametrize("kind", ["NaN score", "zero-size box", "NaN box"])
def test_bad_detection_is_skipped_and_counted(kind, tmp_path, record_outcome):
    ann, images = _one_image_root(tmp_path, jpeg_bytes(), [{"keypoints": kps(30, 20)}])
    det = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 80], "score": 0.9}
    bad = dict(det, score=float("nan")) if kind == "NaN score" else \
        dict(det, bbox=[10, 10, 0, 0]) if kind == "zero-size box" else dict(det, bbox=[float("nan"), 1, 2, 3])
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([det, bad]))

    def run():
        ds = CocoKeypointDataset(ann, images, TopDownTransform(INPUT, COCO_KEYPOINTS, False), det_file=dets)
        ok = len(ds) == 1 and ds.skipped.total == 1 and np.isfinite(ds[0]["image"]).all()
        return (SKIP if ok else WRONG), ds.skipped.counts

    outcome(record_outcome, f"data: detection with {kind}", SKIP, run)


def test_degenerate_crop_is_a_clear_error(record_outcome):
    from rsn_lightning.geometry import crop_affine

    def run():
        verdict, result = api_error(lambda: crop_affine((10, 10), (0, 0), 0.0, INPUT), "degenerate crop")
        return (verdict or WRONG), result

    outcome(record_outcome, "geometry: zero-size crop", CLEAR, run)


# ---------------------------------------------------------------------------------------------- training
def test_training_on_bad_annotations_completes_and_counts(bad_data_run, record_outcome):
    first, _, out, _ = bad_data_run

    def run():
        if first.returncode != 0:
            return RAW, first.stderr[-3000:]
        log = first.stdout + first.stderr
        counted = "wrong number of keypoints (expected 17)" in log and "beyond the image" in log \
            and "cannot use" in log and "corrupt JPEG data" in log
        ok = counted and "AP" in first.stdout and (out / "checkpoints" / "last.ckpt").is_file()
        return (SKIP if ok else WRONG), log[-3000:]

    outcome(record_outcome, "train: bad annotations in train and val, half-body on every crop", SKIP, run)


def test_resume_keeps_the_csv_history(bad_data_run, record_outcome):
    first, second, out, before = bad_data_run

    def run():
        if first.returncode != 0 or second.returncode != 0:
            return RAW, (first.stderr + second.stderr)[-3000:]
        after = (out / "csv" / "metrics.csv").read_text().splitlines()
        kept = [line for line in before.splitlines()[1:] if line.split(",")[0] == "0"]
        epochs = {line.split(",")[0] for line in after[1:]}
        ok = bool(kept) and {"0", "1"} <= epochs and "Restored all states" in second.stdout + second.stderr
        return (CORRECT if ok else LOST), after

    outcome(record_outcome, "train: resume with the CSV logger keeps earlier epochs", CORRECT, run)


NAN_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    import pytorch_lightning as pl
    import torch
    from torch import nn
    from rsn_lightning.data.datamodule import PoseDataModule
    from rsn_lightning.models.rsn import RSN
    from module_settings import lit_module

    root, out, policy = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    class NaNAtStep3(RSN):
        calls = 0
        def forward_all(self, x):
            outs = super().forward_all(x)
            NaNAtStep3.calls += 1
            if NaNAtStep3.calls == 3:
                outs = [[u * float("nan") for u in stage] for stage in outs]
            return outs

    pl.seed_everything(0)
    net = NaNAtStep3(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32)
    dm = PoseDataModule(kind="coco", root=str(root), layout="synthetic", val_boxes="gt", input_size=[96, 128],
                        batch_size=4, num_workers=0, persistent_workers=False, pin_memory=False)
    module = lit_module(net, dm, optimizer={"lr": 1e-3, "scale_lr": False}, output_dir=str(out),
                        nonfinite_loss=policy)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(out / "checkpoints"), save_top_k=0, save_last=True)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=5, limit_val_batches=0,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[ckpt], default_root_dir=str(out))
    from rsn_lightning.cli.config_checks import exit_on_bad_input
    exit_on_bad_input(lambda: trainer.fit(module, datamodule=dm))()
    finite = all(bool(torch.isfinite(p).all()) for p in module.net.parameters())
    print(f"DONE steps={trainer.global_step} skipped={module.nonfinite_steps} finite={finite}")
""")


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_nonfinite_loss_policy(policy, synthetic_root, tmp_path, record_outcome):
    script = tmp_path / "nan_job.py"
    script.write_text(NAN_CHILD)

    def run():
        proc = subprocess.run([sys.executable, str(script), str(synthetic_root), str(tmp_path / "out"), policy],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env=CHILD_ENV)
        text = proc.stdout + proc.stderr
        if policy == "skip":
            ok = proc.returncode == 0 and "skipped=1 finite=True" in proc.stdout
            return (SKIP if ok else WRONG), text[-3000:]
        verdict, text = cli_error(proc, "NaN/Inf", "last.ckpt")
        last = tmp_path / "out" / "checkpoints" / "last.ckpt"
        if verdict != CLEAR or not last.is_file():
            return (verdict or WRONG), text
        state = torch.load(last, weights_only=True)
        usable = all(bool(torch.isfinite(v).all()) for v in state["state_dict"].values() if v.is_floating_point())
        # the fused step left the NaN step's update out on the device; the host noticed at the epoch's end
        # (its first check) and names the step (0-based: the third)
        named = "NaN/Inf at step 2 " in text
        return (CLEAR if usable and named and state["global_step"] == 5 else LOST), text

    expected = SKIP if policy == "skip" else CLEAR
    outcome(record_outcome, f"train: NaN loss, policy {policy}", expected, run)


WORKER_CHILD = textwrap.dedent("""
    import os, signal, sys
    import pytorch_lightning as pl
    from rsn_lightning.cli.config_checks import exit_on_bad_input
    from rsn_lightning.data.datamodule import PoseDataModule
    from rsn_lightning.models.rsn import RSN
    from module_settings import lit_module

    dm = PoseDataModule(kind="coco", root=sys.argv[1], layout="synthetic", val_boxes="gt", input_size=[96, 128],
                        batch_size=2, num_workers=1, persistent_workers=False, pin_memory=False)
    dm.setup("fit")
    transform = dm.train_dataset.transform
    calls = []

    def dies_on_the_third_sample(image, record):
        calls.append(1)
        if len(calls) == 3:  # in the worker process: as the OS's out-of-memory killer would
            os.kill(os.getpid(), signal.SIGKILL)
        return transform(image, record)

    dm.train_dataset.transform = dies_on_the_third_sample
    net = RSN(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32)
    module = lit_module(net, dm, optimizer={"lr": 1e-3, "scale_lr": False})
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=4, limit_val_batches=0,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=sys.argv[2])
    exit_on_bad_input(lambda: trainer.fit(module, datamodule=dm))()
    print("FINISHED SILENTLY")
""")


def test_dataloader_worker_death_ends_the_run_loudly(synthetic_root, tmp_path, record_outcome):
    script = tmp_path / "worker.py"
    script.write_text(WORKER_CHILD)

    def run():
        proc = subprocess.run([sys.executable, str(script), str(synthetic_root), str(tmp_path)],
                              capture_output=True, text=True, timeout=300, env=CHILD_ENV)
        if "FINISHED" in proc.stdout:
            return WRONG, proc.stdout[-2000:]
        return cli_error(proc, "data loader worker", "SIGKILL")

    outcome(record_outcome, "train: a data loader worker killed", CLEAR, run)


SAVER_CHILD = textwrap.dedent("""
    import os, signal, sys, threading
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    target, conf_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    # the checkpoint writer of the project's trainer config (conf/trainer/default.yaml)
    conf = OmegaConf.load(conf_path)
    plugins = [instantiate(p) for p in conf.get("plugins") or []]
    trainer = pl.Trainer(accelerator="cpu", plugins=plugins or None, logger=False, enable_checkpointing=False)
    io = trainer.strategy.checkpoint_io
    ckpt = {"state_dict": {"w": torch.randn(4 * 1024 * 1024)}, "global_step": 0}

    def die_when_the_target_changes():
        # the kill lands the moment last.ckpt starts to change on disk, whatever the writer does
        def key():
            st = os.stat(target)
            return st.st_ino, st.st_size, st.st_mtime_ns
        before = key()
        while key() == before:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    for step in range(10_000):
        ckpt["global_step"] = step
        if step == 2 and mode == "watch":
            threading.Thread(target=die_when_the_target_changes, daemon=True).start()
        io.save_checkpoint(ckpt, target)
        print(step, flush=True)
""")


def test_kill_during_checkpoint_save_with_tmpdir_on_another_filesystem(tmp_path, record_outcome):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a different filesystem from the test's temporary folder")
    script = tmp_path / "saver.py"
    script.write_text(SAVER_CHILD)
    conf_dir = os.environ.get("RSN_CONF_DIR") or Path(__file__).resolve().parents[2] / "conf"
    trainer_conf = Path(conf_dir) / "trainer" / "default.yaml"
    other_fs_tmp = Path(shm / f"rsn_tmp_{os.getpid()}")
    other_fs_tmp.mkdir(exist_ok=True)

    def run():
        torn = []
        modes = ("watch", "0.0", "0.03")  # killed as last.ckpt changes; killed at a time within a save
        env = {**os.environ, "TMPDIR": str(other_fs_tmp), "OMP_NUM_THREADS": "1"}
        lasts = [tmp_path / f"a{i}" / "last.ckpt" for i in range(len(modes))]
        # the savers start together (their imports dominate)
        procs = [subprocess.Popen([sys.executable, str(script), str(last), str(trainer_conf), mode],
                                  stdout=subprocess.PIPE, text=True, env=env) for last, mode in zip(lasts, modes)]
        try:
            for proc, mode in zip(procs, modes):
                if mode == "watch":
                    proc.wait(timeout=120)
                    continue
                saved = -1
                while saved < 1:  # two complete saves, then kill during a later one
                    line = proc.stdout.readline()
                    if not line:
                        break
                    saved = int(line)
                time.sleep(float(mode))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            for mode, last in zip(modes, lasts):
                try:
                    state = torch.load(last, weights_only=True)
                    if state["state_dict"]["w"].numel() != 4 * 1024 * 1024:
                        torn.append(mode)
                except Exception:  # noqa: BLE001 - a torn file fails in many ways
                    torn.append(f"{mode} ({last.stat().st_size if last.exists() else 'no'} bytes)")
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
            shutil.rmtree(other_fs_tmp, ignore_errors=True)
        return (LOST if torn else CORRECT), f"torn after kills: {torn}"

    outcome(record_outcome, "checkpoint: kill -9 mid-save, TMPDIR on another filesystem", CORRECT, run)


def test_failed_checkpoint_save_is_an_error(tmp_path, record_outcome):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")

    def run():
        from rsn_lightning.training.checkpoint_io import AtomicCheckpointIO

        verdict, result = api_error(lambda: AtomicCheckpointIO().save_checkpoint({"a": 1}, blocker / "last.ckpt"),
                                    "not_a_folder")
        return (verdict or WRONG), result

    outcome(record_outcome, "checkpoint: save into an unusable folder", CLEAR, run)


def test_bad_input_error_type_is_a_value_error():
    # the Python API keeps raising ValueError subclasses; only the console scripts drop the traceback
    from rsn_lightning.errors import BadInputError

    assert issubclass(BadInputError, ValueError)
