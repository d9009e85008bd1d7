"""Tiny batches and models shared by the tests of ``models/``."""

import torch

from models.registry import build_model

SRC_VOCAB, TGT_VOCAB = 17, 19
SIZES = dict(emb_size=8, hidden_size=16, maxout_size=8, attention_size=12, num_layers=1, dropout=0.0)


def pad(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lists of ids -> (B, T) LongTensor padded with PAD (0), lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences])
    batch = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long)
    for b, s in enumerate(sequences):
        batch[b, : len(s)] = torch.tensor(s)
    return batch, lengths


def random_sentences(n: int, min_len: int, max_len: int, vocab: int,
                     generator: torch.Generator) -> list[list[int]]:
    """n random sentences of ordinary words (ids >= 4, no specials)."""
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator)
    return [torch.randint(4, vocab, (int(l),), generator=generator).tolist() for l in lengths]


def tiny_model(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model(name, SRC_VOCAB, TGT_VOCAB, **{**SIZES, **overrides}).eval()


def fixed_pairs(n: int, seed: int = 0, min_len: int = 3, max_len: int = 8):
    """n random sentence pairs as padded (src, src_lengths, y, y_lengths)."""
    g = torch.Generator().manual_seed(seed)
    src, src_lengths = pad(random_sentences(n, min_len, max_len, SRC_VOCAB, g))
    y, y_lengths = pad(random_sentences(n, min_len, max_len, TGT_VOCAB, g))
    return src, src_lengths, y, y_lengths


def train(model, src, src_lengths, y, y_lengths, steps: int, lr: float = 1e-2, stop_below: float = 0.0,
          condition: torch.Tensor | None = None) -> float:
    """Adam on one fixed batch; returns the last mean token NLL (stops early below ``stop_below``)."""
    from models.language_model import RNNLanguageModel
    from models.loss import masked_nll
    from models.sequences import add_bos_eos

    tgt_in, tgt_out, tgt_lengths = add_bos_eos(y, y_lengths)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        if isinstance(model, RNNLanguageModel):
            logits = model(tgt_in, tgt_lengths, condition=condition)
        else:
            logits, _ = model(src, src_lengths, tgt_in, tgt_lengths)
        loss = masked_nll(logits, tgt_out)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if loss.item() < stop_below:
            break
    model.eval()
    return loss.item()
