"""The saved view `make ui` opens: the BLEU-by-length curves of one pipeline's translation runs."""
from __future__ import annotations

import json
import time

from pipeline.tracking.runs import KEY, ROLE

VIEW_KEY = "bleu-by-length"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"


def comparison_view(key: str) -> str:
    """The tag value: an envelope whose ``state`` is the runs page's UI state as a JSON string."""
    section = "model-metrics"
    chart = {"type": "LINE", "uuid": "bleu-by-length", "metricSectionId": section, "deleted": False,
             "isGenerated": False, "runsCountToCompare": 50, "displayName": "bleu_by_length (x: source words)",
             "metricKey": "bleu_by_length", "selectedMetricKeys": ["bleu_by_length"], "xAxisKey": "step",
             "useGlobalXaxisKey": False, "lineSmoothness": 0, "useGlobalLineSmoothing": False,
             "scaleType": "linear", "xAxisScaleType": "linear", "yAxisKey": "metric", "yAxisExpressions": [],
             "ignoreOutliers": False, "range": {}, "selectedXAxisMetricKey": "", "displayPoints": True}
    state = {
        "searchFilter": f"tags.`{KEY}` = '{key}' and tags.`{ROLE}` = 'model' and tags.family != 'lm'",
        # Sorted by run name: the runs list flat (a start-time sort nests them under a collapsed parent).
        "orderByKey": "tags.`mlflow.runName`", "orderByAsc": True, "startTime": "ALL", "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs", "datasetsFilter": [],
        "runsHiddenMode": "SHOW_ALL", "groupBy": None, "hideEmptyCharts": True, "isAccordionReordered": False,
        "chartsSearchFilter": "^bleu_by_length$",  # the UI adds a chart per metric: show this one (a regex)
        "selectedColumns": ["tags.`corpus`", "tags.`family`", "tags.`cell`", "metrics.`test_bleu`"],
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
        "compareRunSections": [{"uuid": section, "name": "Model metrics", "display": True, "isReordered": False,
                                "deleted": False, "isGenerated": True}],
        "compareRunCharts": [chart],
    }
    now = int(time.time() * 1000)
    return json.dumps({"name": "BLEU by source length", "createdAt": now, "updatedAt": now,
                       "state": json.dumps(state)})


def comparison_url(base: str, experiment_id: str, has_view: bool) -> str:
    """The runs page of the experiment, on the saved comparison when there is one."""
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return url + (f"&viewStateShareKey={VIEW_KEY}&compareRunsMode=CHART" if has_view else "")
