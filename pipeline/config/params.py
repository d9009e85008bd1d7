"""The whole of params.yaml: every section, and settings laid over them (sweeps, synthetic overrides)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, PrivateAttr

from models.names import parse_model_name
from pipeline.config.ablations import AblationsConfig
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
    lm_samples: LmSamples
    seed: int


class LmSamples(Section):
    """The language models' samples in the report: ancestral sampling with a temperature and top-k."""

    count: int = Field(ge=0)
    max_len: int = Field(gt=0)
    temperature: float = Field(gt=0.0)
    top_k: int = Field(gt=0)


class ProbeConfig(Section):
    """The bag-of-words probe of each translation model's sentence vector (pipeline/probing/bow_probe.py)."""

    labels: int = Field(gt=0)  # most frequent source word types probed
    train_sentences: int = Field(gt=0)  # the seeded sample of the train split the probe is fitted on
    epochs: int = Field(gt=0)
    batch_sentences: int = Field(gt=0)
    lr: float = Field(gt=0.0)
    target_precision: float = Field(gt=0.0, lt=1.0)  # recall is read at the dev threshold reaching this precision
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
    ablations: AblationsConfig
    evaluate: EvaluateConfig
    probe: ProbeConfig
    tune: TuneConfig
    cluster: ClusterConfig
    mlflow: MlflowConfig
    # The model and train sections as params.yaml's top level has them, before a profile is laid over
    # (None without a profile): the controlled experiment's calibrated sizes (controlled_experiment).
    _profile_free: Optional[tuple[ModelConfig, TrainConfig]] = PrivateAttr(default=None)


def overlay(params: Params, settings: dict[str, Any]) -> Params:
    """params with ``{"train.lr": 0.003, "model.hidden_size": 128, …}`` laid over it (validated)."""
    raw = params.model_dump(mode="json")
    for key, value in settings.items():
        section, _, field = key.partition(".")
        raw[section][field] = value
    return Params.model_validate(raw)


# What a profile may change of the controlled experiment: where and how fast it runs, never what it is
# (sizes, learning rate, budget and batches stay as calibrated at the top level of params.yaml).
WHERE_IT_RUNS = ("accelerator", "devices", "num_nodes", "precision", "num_workers", "time_limit_minutes",
                 "checkpoint_every_minutes")


def controlled_experiment(params: Params) -> Params:
    """The synthetic experiment's params: the top-level model and train sections even under a profile
    (its ``WHERE_IT_RUNS`` keys excepted), then ``experiments.synthetic_overrides`` laid over them.

    A profile that means to change the controlled experiment says so in its own
    ``experiments.synthetic_overrides``; model sizes calibrated for 256 units never silently become 1000.
    """
    if params._profile_free is not None:
        model, train = params._profile_free
        runs = {key: getattr(params.train, key) for key in WHERE_IT_RUNS if key in TrainConfig.model_fields}
        params = params.model_copy(update={"model": model, "train": train.model_copy(update=runs)})
    return overlay(params, params.experiments.synthetic_overrides)


def model_argument(name: str) -> str:
    """A stage's model argument, checked like params.yaml's model lists (a ConfigError otherwise)."""
    try:
        parse_model_name(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return name
