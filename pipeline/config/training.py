"""params.yaml's `model` and `train` sections: what the LightningModules, DataModule and Trainer take."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from pipeline.config.section import Section


class ModelConfig(Section):
    """Sizes shared by every architecture (docs/architecture.md, Models); a family ignores those it does not use."""

    emb_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    maxout_size: int = Field(gt=0)  # pieces of the deep output (Bahdanau App. A.2.2)
    attention_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    dropout: float = Field(ge=0.0, lt=1.0)
    # RNNenc's ablation controls (models/rnnenc.py, docs/ablations.md); the other families ignore them.
    context_size: Optional[int] = Field(gt=0)  # |c|; None: hidden_size
    reverse_source: bool  # the encoder reads the source backwards (Sutskever et al. 2014)
    bidirectional: bool  # c from a bidirectional encoder's two final states


class FamilyEpochs(Section):
    """Training epochs per model family on one corpus; None: ``train.max_epochs``."""

    lm: Optional[int] = Field(default=None, ge=1)
    rnnenc: Optional[int] = Field(default=None, ge=1)
    rnnsearch: Optional[int] = Field(default=None, ge=1)


class EpochBudget(Section):
    """The training budget, by corpus and family: epochs, so the same commit and params give the
    same checkpoints on any machine (a wall-clock budget would give a busy machine fewer steps)."""

    bible: FamilyEpochs
    synthetic: FamilyEpochs

    def for_model(self, corpus: str, family: str, default: int) -> int:
        return getattr(getattr(self, corpus), family) or default


class TrainConfig(Section):
    """What the LightningModules and the DataModule take: loss, optimizer, batches, dev metrics."""

    optimizer: Literal["adam", "adadelta"]  # adadelta: ρ=0.95, ε=1e-6 as in the paper
    lr: float = Field(gt=0.0)  # adadelta's paper setting is 1.0
    weight_decay: float = Field(ge=0.0)
    # plateau: halve lr when dev loss stalls; cosine: decay lr per step to COSINE_FLOOR × lr at the
    # end of the epoch budget (known in advance, since budgets are epochs)
    schedule: Literal["none", "plateau", "cosine"]
    label_smoothing: float = Field(ge=0.0, lt=1.0)
    gradient_clip: float = Field(ge=0.0)  # max global L2 norm, 0 = off
    batch_tokens: int = Field(gt=0)  # padded tokens per batch (source or target side)
    batch_sentences: Optional[int] = Field(gt=0)  # also at most this many sentences (paper: 80)
    seed: int
    dev_bleu_every: int = Field(ge=0)  # epochs between dev BLEU measurements, 0 = never
    dev_bleu_sentences: int = Field(gt=0)  # the fixed dev sample BLEU is measured on
    beam_size: int = Field(ge=1)  # for dev BLEU; 1 = greedy
    length_alpha: float = Field(ge=0.0)  # GNMT length normalisation in search
    # The Trainer (pipeline.stages.train): hardware, precision and when to stop.
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: int = Field(ge=1)  # per node; > 1: DDP, one process per device
    num_nodes: int = Field(ge=1)  # > 1: multi-node DDP, ranks started by srun (docs/clusters.md)
    # auto: bf16-mixed where the GPU/CPU computes bf16 natively, else 32 (pipeline/training/precision.py)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"]
    max_epochs: int = Field(ge=1)  # the budget of a model that `epochs` gives none
    # A step budget per model on top of the epochs (optimizer steps, all ranks together); None: epochs alone.
    max_steps: Optional[int] = Field(ge=1)
    epochs: EpochBudget  # the budget by corpus and family (early stopping may end sooner)
    # A safety limit, not a budget: a run still training after this many minutes stops, saves
    # last.ckpt and fails the stage (run it again to continue).
    time_limit_minutes: float = Field(gt=0.0)
    checkpoint_every_minutes: float = Field(gt=0.0)  # last.ckpt, so a killed run resumes
    early_stopping_patience: int = Field(ge=0)  # epochs without a better dev loss; 0 = off
    num_workers: int = Field(ge=0)  # DataLoader worker processes
    # Lay the best config of the model's sweep (reports/tune/<model>.json, the `tune` stage) over
    # the `model` and `train` sections; a model that was not swept trains with params as they are.
    use_tuned: bool
