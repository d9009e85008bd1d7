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
    text = render(load_params())
    (FOLDER / "README.md").write_text(text, encoding="utf-8")
    print(f"wrote {FOLDER / 'README.md'} ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
