"""A sweep's search space as Ray Tune samplers, and the key that identifies a sweep (to resume it)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.config import Dimension, Params
from pipeline.training.checkpoints import TRAINED_CODE


def search_space(dimensions: dict[str, Dimension]) -> dict[str, Any]:
    """params' search space as Ray Tune samplers."""
    from ray import tune

    space = {}
    for key, dimension in dimensions.items():
        if dimension.choice is not None:
            space[key] = tune.choice(dimension.choice)
        elif dimension.loguniform is not None:
            space[key] = tune.loguniform(*dimension.loguniform)
        elif dimension.uniform is not None:
            space[key] = tune.uniform(*dimension.uniform)
        else:
            space[key] = tune.randint(*dimension.randint)  # type: ignore[misc]
    return space


def sweep_key(model: str, params: Params, data_dir: Path) -> str:
    """Identifies a sweep: a rerun with the same key resumes it, any change starts a new one."""
    decisive = [model, params.tune.model_dump(mode="json"), params.model.model_dump(mode="json"),
                params.train.model_dump(mode="json")]
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode())
    for path in [data_dir / "stats.json", data_dir / "corpus.json", *TRAINED_CODE]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
