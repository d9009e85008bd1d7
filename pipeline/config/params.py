"""The whole of params.yaml: every section, and settings laid over them (sweeps, synthetic overrides)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from models.names import parse_model_name
from pipeline.config.data import PrepareConfig
from pipeline.config.section import Section
from pipeline.config.cluster import ClusterConfig
from pipeline.config.sweeps import ExperimentsConfig, TuneConfig
from pipeline.config.training import ModelConfig, TrainConfig
from pipeline.errors import ConfigError


class EvaluateConfig(Section):
    beam_size: int = Field(ge=1)  # 1 = greedy
    length_alpha: float = Field(ge=0.0)
    batch_sentences: int = Field(gt=0)
    bootstrap_samples: int = Field(gt=0)  # resamples for each bucket's 95% interval
    precision: Literal["auto", "32", "bf16-mixed"]  # of decoding and test perplexity (pipeline/training/precision.py)
    heatmaps: int = Field(ge=0)  # attention heatmaps of long test sentences per RNNsearch model
    heatmap_min_words: int = Field(gt=0)
    seed: int


class MlflowConfig(Section):
    tracking_uri: Optional[str]  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project
    experiment: str


class Params(Section):
    prepare: PrepareConfig
    synthetic: PrepareConfig  # the controlled experiment's corpus
    model: ModelConfig
    train: TrainConfig
    experiments: ExperimentsConfig
    evaluate: EvaluateConfig
    tune: TuneConfig
    cluster: ClusterConfig
    mlflow: MlflowConfig


def overlay(params: Params, settings: dict[str, Any]) -> Params:
    """params with ``{"train.lr": 0.003, "model.hidden_size": 128, …}`` laid over it (validated)."""
    raw = params.model_dump(mode="json")
    for key, value in settings.items():
        section, _, field = key.partition(".")
        raw[section][field] = value
    return Params.model_validate(raw)


def model_argument(name: str) -> str:
    """A stage's model argument, checked like params.yaml's model lists (a ConfigError otherwise)."""
    try:
        parse_model_name(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return name
