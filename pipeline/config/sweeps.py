"""params.yaml's `tune` and `experiments` sections: which models run, and how they are swept."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from models.names import parse_model_name
from pipeline.config.section import Section
from pipeline.config.training import ModelConfig, TrainConfig


class Dimension(Section):
    """One axis of a search space: exactly one of the four Ray Tune samplers."""

    loguniform: Optional[tuple[float, float]] = None  # [low, high], both > 0
    uniform: Optional[tuple[float, float]] = None
    randint: Optional[tuple[int, int]] = None  # [low, high), high exclusive as in tune.randint
    choice: Optional[list[Any]] = None

    @model_validator(mode="after")
    def exactly_one(self) -> "Dimension":
        given = [name for name in ("loguniform", "uniform", "randint", "choice") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of loguniform: [low, high], uniform: [low, high], "
                             "randint: [low, high], choice: [values]")
        kind = given[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice: needs at least one value")
        else:
            low, high = getattr(self, kind)
            if not low < high:
                raise ValueError(f"{kind}: low {low} must be below high {high}")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: low must be > 0 (got {low})")
        return self

    def bounds(self) -> list[Any]:
        """Values that every sample lies between (or among): validating them validates the space."""
        if self.choice is not None:
            return list(self.choice)
        if self.randint is not None:
            return [self.randint[0], self.randint[1] - 1]
        return list(self.loguniform or self.uniform)  # type: ignore[arg-type]


class TuneResources(Section):
    """What one trial takes: a Ray Train run of ``workers`` processes (DDP when > 1)."""

    workers: int = Field(ge=1)
    cpus_per_worker: float = Field(ge=0.0)
    gpus_per_worker: float = Field(ge=0.0)


# Keys a sweep may vary: the model's sizes and the optimisation, not where or how long it runs.
TUNABLE = {"model": {"emb_size", "hidden_size", "maxout_size", "attention_size", "num_layers", "dropout",
                     "context_size", "reverse_source", "bidirectional"},
           "train": {"optimizer", "lr", "weight_decay", "schedule", "label_smoothing", "gradient_clip",
                     "batch_tokens", "batch_sentences"}}


def check_setting(key: str, value: Any, where: str) -> None:
    """A ValueError naming ``where`` unless ``key`` (``model.hidden_size``) is in TUNABLE and
    ``value`` is valid for it."""
    section, _, field = key.partition(".")
    if field not in TUNABLE.get(section, ()):
        allowed = ", ".join(f"{s}.{f}" for s in TUNABLE for f in sorted(TUNABLE[s]))
        raise ValueError(f"{where}: not a tunable key (allowed: {allowed})")
    try:
        declared = {"model": ModelConfig, "train": TrainConfig}[section].model_fields[field]
        TypeAdapter(Annotated[declared.annotation, declared]).validate_python(value)
    except ValidationError as error:
        raise ValueError(f"{where}: {value!r} is not a valid {key}: {error.errors()[0]['msg']}") from None


class TuneConfig(Section):
    """The `tune` stage: a Ray Tune sweep with ASHA early stopping per model in ``models``."""

    models: list[str]  # swept on the Bible corpus; train@<model> uses the best when train.use_tuned
    metric: Literal["dev_loss", "dev_bleu"]  # dev_loss is minimised, dev_bleu maximised
    num_samples: int = Field(ge=1)  # trials per model
    max_concurrent_trials: int = Field(ge=1)
    epochs: int = Field(ge=1)  # per trial, ASHA's max_t
    batches_per_epoch: Optional[int] = Field(gt=0)  # a trial's epoch; null: the whole train split
    grace_period: int = Field(ge=1)  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: float = Field(gt=1.0)  # ASHA: 1/reduction_factor of trials go on per rung
    max_failures: int = Field(ge=0)  # retries of a crashed trial (FailureConfig)
    seed: int  # the search's random state
    resources_per_trial: TuneResources
    search_space: dict[Literal["lm", "rnnenc", "rnnsearch"], dict[str, Dimension]]

    @field_validator("models")
    @classmethod
    def known_models(cls, names: list[str]) -> list[str]:
        for name in names:
            parse_model_name(name)
        if len(set(names)) != len(names):
            raise ValueError("a model is listed twice")
        return names

    @field_validator("search_space")
    @classmethod
    def tunable_keys(cls, space: dict[str, dict[str, Dimension]]) -> dict[str, dict[str, Dimension]]:
        for family, dimensions in space.items():
            for key, dimension in dimensions.items():
                for value in dimension.bounds():
                    check_setting(key, value, where=f"{family}.{key}")
        return space

    @model_validator(mode="after")
    def space_for_every_model(self) -> "TuneConfig":
        for name in self.models:
            family = name.split("-")[0]
            if not self.search_space.get(family):  # type: ignore[call-overload]
                raise ValueError(f"search_space.{family}: empty search space, but {name} is to be swept")
        if self.grace_period > self.epochs:
            raise ValueError(f"grace_period {self.grace_period} is longer than epochs {self.epochs}")
        if self.metric == "dev_bleu" and any(name.startswith("lm-") for name in self.models):
            raise ValueError("metric dev_bleu needs translation models; language models have no BLEU")
        return self


class ExperimentsConfig(Section):
    """Which models the pipeline trains, evaluates and reports (one DVC stage each)."""

    models: list[str]
    # Trained on the controlled synthetic corpus as well (translation models only).
    synthetic_models: list[str]
    # model.* / train.* values that differ on the synthetic corpus (the keys a sweep may set):
    # the controlled experiment is sized for its own task, the Bible models keep the top level.
    synthetic_overrides: dict[str, Any]

    @field_validator("synthetic_overrides")
    @classmethod
    def overridable(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        for key, value in overrides.items():
            check_setting(key, value, where=key)
        return overrides

    @field_validator("models", "synthetic_models")
    @classmethod
    def known_models(cls, names: list[str], info) -> list[str]:
        if info.field_name == "models" and not names:
            raise ValueError("the model list is empty")
        for name in names:
            parse_model_name(name)
            if info.field_name == "synthetic_models" and name.startswith("lm-"):
                raise ValueError(f"{name!r} is a language model; the synthetic corpus trains translation models")
        if len(set(names)) != len(names):
            raise ValueError("a model is listed twice")
        return names
