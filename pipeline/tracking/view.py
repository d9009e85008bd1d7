"""The saved view `make ui` opens: the BLEU-by-length curves of one pipeline's translation runs, a chart
per corpus (the controlled task's BLEU near 100 and real text's near 10 do not share an axis well).

Each curve is the metric ``bleu_by_length.<corpus>`` (step = a bucket's lower bound); its x-axis is the
metric ``source_words`` logged at the same steps with the same value, so the axis is named for what it
is rather than "Step". Each run brings its own colour (``pipeline.tracking.colours``).
"""
from __future__ import annotations

import json
import time

from pipeline.tracking.runs import KEY, ROLE

VIEW_KEY = "bleu-by-length"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
X_METRIC = "source_words"


def bleu_metric(corpus: str) -> str:
    return f"bleu_by_length.{corpus}"


def chart(corpus: str, title: str, section: str) -> dict:
    return {"type": "LINE", "uuid": f"bleu-by-length-{corpus}", "metricSectionId": section, "deleted": False,
            "isGenerated": False, "runsCountToCompare": 50, "displayName": f"{title}: BLEU by source length",
            "metricKey": bleu_metric(corpus), "selectedMetricKeys": [bleu_metric(corpus)], "xAxisKey": "metric",
            "selectedXAxisMetricKey": X_METRIC, "useGlobalXaxisKey": False, "lineSmoothness": 0,
            "useGlobalLineSmoothing": False, "scaleType": "linear", "xAxisScaleType": "linear", "yAxisKey": "metric",
            "yAxisExpressions": [], "ignoreOutliers": False, "range": {}, "displayPoints": True}


def comparison_view(key: str, corpora: dict[str, str]) -> str:
    """The tag value: an envelope whose ``state`` is the runs page's UI state as a JSON string;
    ``corpora``: corpus → what the chart calls it (a chart each)."""
    section = "model-metrics"
    state = {
        "searchFilter": f"tags.`{KEY}` = '{key}' and tags.`{ROLE}` = 'model' and tags.family != 'lm'",
        # Sorted by run name: the runs list flat (a start-time sort nests them under a collapsed parent).
        "orderByKey": "tags.`mlflow.runName`", "orderByAsc": True, "startTime": "ALL", "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs", "datasetsFilter": [],
        "runsHiddenMode": "SHOW_ALL", "groupBy": None, "hideEmptyCharts": True, "isAccordionReordered": False,
        "chartsSearchFilter": r"^bleu_by_length\.",  # the UI adds a chart per metric: show these (a regex)
        "selectedColumns": ["tags.`corpus`", "tags.`family`", "tags.`cell`", "metrics.`test_bleu`"],
        "globalLineChartConfig": {"xAxisKey": "metric", "lineSmoothness": 0, "selectedXAxisMetricKey": X_METRIC},
        # One chart per row, taller than the UI's default 360 px: a curve over seven buckets to read.
        "compareRunSections": [{"uuid": section, "name": "BLEU by source length", "display": True,
                                "isReordered": False, "deleted": False, "isGenerated": True, "columns": 1,
                                "cardHeight": 420}],
        "compareRunCharts": [chart(corpus, title, section) for corpus, title in corpora.items()],
    }
    now = int(time.time() * 1000)
    return json.dumps({"name": "BLEU by source length", "createdAt": now, "updatedAt": now,
                       "state": json.dumps(state)})


def comparison_url(base: str, experiment_id: str, has_view: bool) -> str:
    """The runs page of the experiment, on the saved comparison when there is one."""
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return url + (f"&viewStateShareKey={VIEW_KEY}&compareRunsMode=CHART" if has_view else "")
