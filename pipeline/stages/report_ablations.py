"""`report_ablations` stage: ``reports/ablations/README.md`` from what `evaluate_ablations` wrote
(docs/ablations.md). Reads only earlier outputs and params' variant list, so it renders offline.

    python -m pipeline.stages.report_ablations
"""
from __future__ import annotations

from pipeline.config import load_params
from pipeline.errors import stage_entry_point
from pipeline.reporting.ablations import FOLDER, render


@stage_entry_point
def main() -> None:
    params = load_params()
    text = render(params)
    (FOLDER / "README.md").write_text(text, encoding="utf-8")
    print(f"wrote {FOLDER / 'README.md'} ({len(text.splitlines())} lines)")
    # The ablations' stages reopened the pipeline's MLflow run (each run of a stage does): their last
    # stage ends it again, as `report` does for make repro's.
    from pipeline.tracking.runs import Tracker

    tracker = Tracker(params.mlflow)
    tracker.finish(tracker.parent_run())


if __name__ == "__main__":
    main()
