"""params.yaml schema (pydantic): every section is validated before any stage does work.

A stage calls ``load_params()`` and reads only its own section; an unknown key, a missing key, a
wrong type or an out-of-range value anywhere is a ``ConfigError`` whose message is one line naming
the key. params.yaml is the only place a value is written: the schema holds types, bounds and
cross-checks, never a second default.

    section.py   the base class (no defaults, unknown keys refused)
    data.py      prepare / synthetic: sources, split, cleaning, tokenization
    training.py  model / train
    sweeps.py    tune / experiments, and which keys a sweep may set
    cluster.py   cluster: Ray, SLURM, where job results go
    ablations.py ablations: the controlled experiment's variants (docs/ablations.md)
    params.py    the whole file, evaluate / probe / mlflow, ``overlay``, ``controlled_experiment``
    loading.py   YAML → Params with one-line errors, profiles
"""
from pipeline.config.ablations import AblationsConfig, Variant
from pipeline.config.data import (CleanConfig, FilesSource, PrepareConfig, SonofmanSource, SplitConfig,
                                  SyntheticSource, TokenizeConfig, Wmt14Source)
from pipeline.config.loading import PARAMS_FILE, apply_profile, load_params, validate_params
from pipeline.config.params import (EvaluateConfig, LmSamples, MlflowConfig, Params, ProbeConfig, controlled_experiment,
                                    model_argument, overlay)
from pipeline.config.section import DROP_NAMES, REPAIR_NAMES
from pipeline.config.cluster import ClusterConfig, ResultsConfig, SlurmConfig
from pipeline.config.sweeps import Dimension, ExperimentsConfig, TuneConfig, TuneResources
from pipeline.config.training import EpochBudget, FamilyEpochs, ModelConfig, TrainConfig

__all__ = [
    "AblationsConfig", "Variant", "CleanConfig", "ClusterConfig", "Dimension", "EpochBudget", "EvaluateConfig",
    "ExperimentsConfig", "FamilyEpochs", "FilesSource", "LmSamples", "MlflowConfig", "ProbeConfig", "ModelConfig",
    "PARAMS_FILE", "Params", "PrepareConfig", "DROP_NAMES", "REPAIR_NAMES", "ResultsConfig", "SlurmConfig",
    "SonofmanSource", "SplitConfig", "SyntheticSource", "TokenizeConfig", "TrainConfig", "TuneConfig", "TuneResources",
    "Wmt14Source", "apply_profile", "controlled_experiment", "load_params", "model_argument", "overlay", "validate_params",
]
