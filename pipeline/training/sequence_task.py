"""What both Lightning tasks share: masked cross-entropy, optimizer and schedule, dev loss/perplexity.

The tasks only wire training; the architectures are plain ``nn.Module``s built by
``models.registry.build_model``. A task subclass says how a batch becomes (features, targets); the
model's ``projection`` maps features to logits, and training takes its loss without forming them
(``models.loss.projected_nll``).
Optimizers: Adam, or Adadelta with ρ = 0.95, ε = 1e-6 (Bahdanau et al. 2014 App. B.2).
"""
from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import SumMetric

from models.loss import masked_nll, projected_nll
from models.registry import build_model
from models.special_tokens import PAD

COSINE_FLOOR = 0.05  # the cosine schedule ends at 5% of the initial learning rate


class SequenceTask(pl.LightningModule):
    def __init__(self, model_name: str, src_vocab: int, tgt_vocab: int, model: dict[str, Any],
                 train: dict[str, Any]) -> None:
        """``model``: the sizes of params.yaml's `model` section; ``train``: its `train` section."""
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_name, src_vocab, tgt_vocab, **model)
        self.train_config = train
        # Sums over the dev set, added up across DDP ranks before the per-token mean is taken.
        self.dev_nll, self.dev_tokens = SumMetric(), SumMetric()

    def features_and_targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, M) what the model's projection maps to logits, and the (B, T) targets, PAD where no
        loss is taken."""
        raise NotImplementedError

    def logits_and_targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, V) logits and their (B, T) targets, PAD where no loss is taken."""
        features, targets = self.features_and_targets(batch)
        return self.model.projection(features), targets

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean training loss (label smoothing included) and the targets."""
        features, targets = self.features_and_targets(batch)
        loss = projected_nll(features, self.model.projection, targets, label_smoothing=self.train_config["label_smoothing"])
        return loss, targets

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        loss, targets = self.training_loss(batch)
        # A tensor, never read back to the host: int() here would make the CPU wait for the device at
        # every step. Lightning weighs the epoch mean by it as a tensor (value * batch_size).
        tokens = (targets != PAD).sum()
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=tokens,
                 sync_dist=True)
        self.log("train_tokens", tokens.float(), on_step=False, on_epoch=True, reduce_fx="sum", sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> None:
        logits, targets = self.logits_and_targets(batch)
        self.dev_nll.update(masked_nll(logits.float(), targets, reduction="sum"))
        self.dev_tokens.update((targets != PAD).sum())

    def on_validation_epoch_end(self) -> None:
        mean_nll = self.dev_nll.compute() / self.dev_tokens.compute().clamp(min=1)
        self.log("dev_loss", mean_nll, prog_bar=True)
        self.log("dev_ppl", torch.exp(mean_nll.clamp(max=50)), prog_bar=True)  # clamp: no inf at init
        self.dev_nll.reset()
        self.dev_tokens.reset()

    def configure_optimizers(self) -> Any:
        config = self.train_config
        if config["optimizer"] == "adadelta":
            optimizer = torch.optim.Adadelta(self.parameters(), lr=config["lr"], rho=0.95, eps=1e-6,
                                             weight_decay=config["weight_decay"])
        else:
            # fused: one kernel over all parameters (CPU and CUDA), 6× the per-tensor loop on a CPU
            # (17 → 2.6 ms for 6.4M parameters). Not under 16-mixed, whose grad scaler must unscale first.
            trainer = getattr(self, "_trainer", None)
            fused = (all(p.device.type in ("cpu", "cuda") for p in self.parameters())
                     and not (trainer is not None and trainer.precision == "16-mixed")) or None
            optimizer = torch.optim.Adam(self.parameters(), lr=config["lr"], weight_decay=config["weight_decay"],
                                         fused=fused)
        if config["schedule"] == "none":
            return optimizer
        if config["schedule"] == "cosine":
            # Over the whole budget (Lightning knows it: epochs × batches per epoch), per step. Read at
            # the first step, not here: estimated_stepping_batches builds the train loader, and one
            # built before a checkpoint is restored never gets the loader's mid-epoch position.
            budget: list[int] = []

            def factor(step: int) -> float:
                if step == 0:
                    return 1.0
                if not budget:
                    budget.append(max(int(self.trainer.estimated_stepping_batches), 1))
                return COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(step / budget[0], 1.0)))

            cosine = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=1)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": plateau, "monitor": "dev_loss", "interval": "epoch"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip the global gradient norm to params' ``train.gradient_clip`` (Pascanu et al. 2013)."""
        limit = gradient_clip_val or self.train_config["gradient_clip"]
        if not limit:
            return
        if optimizer.defaults.get("fused"):
            # Lightning refuses to clip for a fused optimizer under any mixed precision, for fear of
            # a grad scaler; fused is only chosen where there is none (32, bf16-mixed): clip directly.
            torch.nn.utils.clip_grad_norm_(self.parameters(), limit)
        else:
            self.clip_gradients(optimizer, gradient_clip_val=limit, gradient_clip_algorithm="norm")
