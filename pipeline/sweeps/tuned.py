"""Sweep results as params: the best config of ``reports/tune/<model>.json`` laid over params.

The `tune` stage writes one file per model of ``experiments.models`` (``"best": null`` for a model
that was not swept), so every training stage can depend on its own file; ``train.use_tuned`` decides
whether the best config is used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.config import Params, overlay
from pipeline.errors import UserError

TUNE_REPORTS = Path("reports/tune")


def describe(config: dict[str, Any]) -> str:
    """``model.hidden_size=128, train.lr=0.003162`` for tables."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(config.items())) or "-"


def tuned_params(params: Params, model: str, reports: Path = TUNE_REPORTS) -> tuple[Params, dict[str, Any]]:
    """(params to train ``model`` with, the tuned config applied: empty when none)."""
    if not params.train.use_tuned:
        return params, {}
    path = reports / f"{model}.json"
    try:
        result = json.loads(path.read_text())
        swept, best = result["swept"], result["best"]
    except FileNotFoundError:
        raise UserError(f"{path}: no sweep result for {model} (run `dvc repro tune@{model}`, "
                        "or set train.use_tuned: false)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: not a sweep result ({error!r})") from None
    if not swept:
        return params, {}
    if not best:
        raise UserError(f"{path}: the sweep of {model} has no successful trial (see its `trials`)")
    return overlay(params, best["config"]), best["config"]
