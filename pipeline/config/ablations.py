"""params.yaml's `ablations` section: the controls of the controlled experiment (docs/ablations.md).

Each variant is one synthetic model trained again with a few model.* / train.* values changed (its
``settings``, laid over the controlled experiment's own), on the controlled task or on its reordered
twin: the task with the same dictionary and sentences but another target word order
(``reordered_order``). `make ablations` trains and evaluates them (ablations/dvc.yaml); the default
pipeline never reads this section.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from models.names import parse_model_name
from pipeline.config.section import Section
from pipeline.config.training import ModelConfig, TrainConfig

VARIANT_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")  # a DVC stage item and a folder name
# What a variant may change: what the model is and how it learns, not where it runs or its budget
# (the comparison is at the controlled experiment's calibrated budget).
SETTABLE = {"model": set(ModelConfig.model_fields),
            "train": {"optimizer", "lr", "weight_decay", "schedule", "label_smoothing", "gradient_clip",
                      "batch_tokens", "batch_sentences", "seed"}}


class Variant(Section):
    model: str  # rnnenc-<cell> or rnnsearch-<cell>
    corpus: Literal["synthetic", "reordered"]
    settings: dict[str, Any]  # {"model.context_size": 64, "train.seed": 2, …}

    @field_validator("model")
    @classmethod
    def translation_model(cls, name: str) -> str:
        family, _ = parse_model_name(name)
        if family == "lm":
            raise ValueError(f"{name!r} is a language model; the ablations train translation models")
        return name

    @field_validator("settings")
    @classmethod
    def settable(cls, settings: dict[str, Any]) -> dict[str, Any]:
        for key, value in settings.items():
            section, _, field = key.partition(".")
            if field not in SETTABLE.get(section, ()):
                allowed = ", ".join(f"{s}.{f}" for s in SETTABLE for f in sorted(SETTABLE[s]))
                raise ValueError(f"{key}: not a key a variant may set (allowed: {allowed})")
            declared = {"model": ModelConfig, "train": TrainConfig}[section].model_fields[field]
            try:
                TypeAdapter(Annotated[declared.annotation, declared]).validate_python(value)
            except ValidationError as error:
                raise ValueError(f"{key}: {value!r} is not valid: {error.errors()[0]['msg']}") from None
        return settings


class AblationsConfig(Section):
    # The reordered twin of the controlled task: the `synthetic` section with this target word order.
    reordered_order: Literal["swap_adjacent", "monotone", "reversed", "swap_halves"]
    beam_size: int = Field(ge=1)  # decoding of every model the ablations compare (1 = greedy)
    variants: dict[str, Variant]  # name → variant; the name is its stage, checkpoint folder and MLflow run

    @field_validator("variants")
    @classmethod
    def valid_names(cls, variants: dict[str, Variant]) -> dict[str, Variant]:
        for name in variants:
            if not VARIANT_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: a variant name is lowercase letters, digits and single hyphens")
        return variants
