"""The notebooks run top to bottom in a real Jupyter kernel (nbclient) on inputs the tests make: a sweep
folder in the sweep-summary format, results files on coco_mini, a tiny checkpoint. No network, no
wandb account; each notebook must write its PNG figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.crafted_results import crafted_results  # tests/ is on sys.path (its conftest)
from runs.sweep_folders import write_sweep

jupytext = pytest.importorskip("jupytext", reason="the notebook tests need jupytext (dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient and ipykernel (dev extra)")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("ablation_sweep", "error_analysis", "qualitative")
PNG = b"\x89PNG\r\n\x1a\n"


def execute(name: str, cwd: Path):
    """Run the notebook's py:percent source (what reviewers read) in a fresh python3 kernel."""
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_pairs_are_in_sync(name):
    """The committed .ipynb holds the same cells as its jupytext py:percent twin (`jupytext --sync`)."""
    py = jupytext.read(NOTEBOOKS / f"{name}.py")
    ipynb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    assert [(c.cell_type, c.source) for c in ipynb.cells] == [(c.cell_type, c.source) for c in py.cells]
    assert all(not c.get("outputs") for c in ipynb.cells if c.cell_type == "code"), "commit notebooks without outputs"


@pytest.mark.parametrize("with_summary", [True, False])
def test_ablation_sweep_notebook(tmp_path, monkeypatch, with_summary):
    sweep = write_sweep(tmp_path / "logs" / "train" / "multiruns" / "2026-01-01_00-00-00")
    if not with_summary:  # an older sweep: rebuilt from the job folders
        (sweep / "summary.csv").unlink()
    monkeypatch.delenv("RSN_SWEEP", raising=False)  # found as the newest under ./logs/train/multiruns
    out = execute("ablation_sweep", tmp_path)
    assert "7 runs; swept: data.input_size, model.net.num_stages" in out
    assert "6: failed CUDA out of memory" in out
    figures = sweep / "figures"
    names = sorted(p.name for p in figures.glob("*.png"))
    assert names == ["ap_by_data.input_size.png", "ap_by_input_size.png", "ap_by_model.net.num_stages.png",
                     "ap_by_num_stages.png", "ap_by_prm.png", "ap_by_width_mult.png", "ap_vs_gflops.png",
                     "ap_vs_images_per_s.png"]
    assert all(p.read_bytes()[:8] == PNG for p in figures.glob("*.png"))


def test_ablation_sweep_notebook_without_a_sweep_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("RSN_SWEEP", raising=False)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="no sweep found under logs/train/multiruns"):
        execute("ablation_sweep", tmp_path)


def test_error_analysis_notebook(tmp_path, monkeypatch, coco_mini_dir):
    gt = json.loads((coco_mini_dir / "test_coco.json").read_text())
    results = tmp_path / "results"
    results.mkdir()
    (results / "crafted.json").write_text(json.dumps(crafted_results(gt)))
    monkeypatch.setenv("RSN_GT", str(coco_mini_dir / "test_coco.json"))
    monkeypatch.setenv("RSN_RESULTS", str(results / "crafted.json"))
    monkeypatch.setenv("RSN_RESULTS_B", str(coco_mini_dir / "example_coco_preds.json"))
    monkeypatch.delenv("RSN_FIGURES", raising=False)
    out = execute("error_analysis", tmp_path)
    assert "keypoint labels: {'good': 139, 'jitter': 18, 'inversion': 5, 'swap': 1, 'miss': 3}" in out
    assert "false_negatives  AP 1.0000" in out
    figures = results / "error_analysis"
    for name in ("crafted/keypoint_errors.png", "crafted/ap_improvement.png", "crafted/oks_by_size.png",
                 "example_coco_preds/error_analysis.json", "comparison.png"):
        assert (figures / name).is_file(), name
    assert (figures / "comparison.png").read_bytes()[:8] == PNG


def test_qualitative_notebook(tmp_path, monkeypatch, coco_mini_dir):
    from rsn_lightning.models.checkpoint import save_checkpoint
    from rsn_lightning.models.registry import create_model

    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "tiny.pth", create_model("rsn_tiny", num_stages=2))
    monkeypatch.setenv("RSN_CKPT", str(ckpt))
    monkeypatch.setenv("RSN_GT", str(coco_mini_dir / "test_coco.json"))
    monkeypatch.setenv("RSN_IMAGES", str(coco_mini_dir))
    monkeypatch.setenv("RSN_RESULTS", str(coco_mini_dir / "example_coco_preds.json"))
    monkeypatch.delenv("RSN_FIGURES", raising=False)
    out = execute("qualitative", tmp_path)
    assert "detections matched" in out
    figures = tmp_path / "run" / "qualitative"
    names = sorted(p.name for p in figures.glob("*.png"))
    assert names == ["best.png", "prm_attention.png", "stage_heatmaps.png", "worst.png"]
