"""rsn-analyze: why a results file loses AP (the Ronchi & Perona error taxonomy, as coco-analyze).

    rsn-analyze GT.json RESULTS.json --out DIR

writes DIR/error_analysis.json (keypoint_errors, per_keypoint, ap_after_correction, ap_each_alone,
background_fp, false_negatives, matches) and the PNG figures keypoint_errors.png, ap_improvement.png
and oks_by_size.png, then prints the summary.
"""

from __future__ import annotations

import argparse
import sys

from rsn_lightning.evaluation.keypoint_errors import LABELS


def summary_text(report: dict) -> str:
    """The counts and the AP after each cumulative correction, as printed by rsn-analyze."""
    total = sum(report["keypoint_errors"].values()) or 1
    lines = [f"{report['matched_detections']} of {report['detections']} detections matched to a person at OKS >= "
             f"{report['params']['localization_oks']}; their {total} labelled keypoints:"]
    lines += [f"  {t:<10} {report['keypoint_errors'][t]:6d}  {100 * report['keypoint_errors'][t] / total:5.1f}%"
              for t in LABELS]
    lines.append(f"background false positives: {report['background_fp']['count']}   "
                 f"false negatives: {report['false_negatives']['count']} of {report['ground_truth_people']} people")
    lines.append("AP after correcting (cumulative):      AP    AP50    AP75")
    def value(v):  # pycocotools' -1: no person left to score (e.g. every one a false negative)
        return f"{v:.4f}" if v is not None and v >= 0 else "   n/a"

    for step in report["ap_after_correction"]:
        lines.append(f"  {step['error']:<34} {value(step['AP'])}  {value(step['AP50'])}  {value(step['AP75'])}")
    return "\n".join(lines)


def analyze_evaluation(datamodule, output_dir) -> str | None:
    """rsn-eval ``analysis=true``: the error analysis of the newest results file under
    ``output_dir/results`` against the datamodule's COCO validation file, into
    ``output_dir/error_analysis``. Returns that folder, or None (with the reason logged) when the
    dataset has no COCO keypoint ground truth (MPII) or no results were written."""
    import logging
    from pathlib import Path

    from rsn_lightning.reports.error_figures import write_analysis

    log = logging.getLogger(__name__)
    gt = getattr(datamodule, "val_ann_file", None)
    results = sorted((Path(output_dir) / "results").glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not gt or not results:
        log.warning("analysis=true: skipped, %s", "no COCO keypoint ground truth for this dataset (the error "
                    "analysis is defined on COCO's OKS)" if not gt else f"no results JSON in {output_dir}/results")
        return None
    out = Path(output_dir) / "error_analysis"
    report = write_analysis(gt, results[-1], out)
    print(summary_text(report))
    return str(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rsn-analyze", description=__doc__.splitlines()[0])
    p.add_argument("gt", help="COCO keypoint ground-truth JSON (e.g. person_keypoints_val2017.json)")
    p.add_argument("results", help="COCO keypoint results JSON (a list of {image_id, keypoints, score})")
    p.add_argument("--out", required=True, help="folder for error_analysis.json and the PNG figures")
    p.add_argument("--no-figures", action="store_true", help="write the JSON only")
    args = p.parse_args(argv)

    from rsn_lightning.reports.error_figures import write_analysis

    try:
        report = write_analysis(args.gt, args.results, args.out, figures=not args.no_figures)
    except (FileNotFoundError, ValueError) as err:
        print(f"rsn-analyze: {err} (ground truth {args.gt}, results {args.results})", file=sys.stderr)
        return 2
    print(summary_text(report))
    for f in report["files"]:
        print(f"  wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
