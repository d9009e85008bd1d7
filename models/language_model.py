"""Recurrent language model, "RNN as a generator" (docs/architecture.md, Language models; Elman 1990,
Jordan 1986; the decoder of Cho et al. 2014, arXiv 1406.1078 Sec. 2.1, without a source sentence):

    h_t = f(h_{t-1}, [E y_{t-1}; c])          f = rnn | lstm | gru | jordan, weights shared over t
    p(y_t | y_<t) = softmax(W_hy h_t + b_y)

trained with teacher forcing on BOS y -> y EOS and evaluated by perplexity (``models.loss``).
The optional conditioning vector c (B, cond_size) is concatenated to every input step rather than
projected into h_0: it then reaches every step directly, exactly as c reaches RNNenc's decoder,
and works the same for every cell (a Jordan state is an output, not a free hidden vector).
"""

import torch
from torch import nn

from models.cells import Recurrent, State
from models.special_tokens import BOS, EOS, PAD


class RNNLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, cell: str = "gru", emb_size: int = 620, hidden_size: int = 1000,
                 num_layers: int = 1, dropout: float = 0.0, cond_size: int = 0):
        super().__init__()
        self.cond_size = cond_size
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.rnn = Recurrent(cell, emb_size + cond_size, hidden_size, num_layers, dropout)
        self.out = nn.Linear(hidden_size, vocab_size)  # W_hy, b_y

    def _inputs(self, tokens: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """tokens (B, T) -> cell inputs (B, T, E + cond_size)."""
        x = self.dropout(self.embed(tokens))  # (B, T, E)
        if (condition is None) != (self.cond_size == 0):
            given = "missing" if condition is None else "given"
            raise ValueError(f"cond_size={self.cond_size} but condition is {given}")
        if condition is not None:
            c = condition.expand(tokens.size(0), -1)  # (B, C); a single (C,) vector is broadcast
            x = torch.cat([x, c.unsqueeze(1).expand(-1, tokens.size(1), -1)], dim=-1)
        return x

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                condition: torch.Tensor | None = None) -> torch.Tensor:
        """tokens = BOS y (B, T) -> logits (B, T, V) for y EOS. ``lengths`` is not needed: the
        recurrence is causal, so padding after a sentence changes none of its logits, and unpacked the
        whole sequence is one call (torch's C++ loop on a CPU, cuDNN on a GPU), not packing's per-step loop."""
        return self.projection(self.features(tokens, lengths, condition))  # (B, T, V)

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                 condition: torch.Tensor | None = None) -> torch.Tensor:
        """What W_hy projects: h_t after dropout (B, T, H) (training: models.loss.projected_nll)."""
        h, _ = self.rnn(self._inputs(tokens, condition))  # (B, T, H)
        return self.dropout(h)

    @property
    def projection(self) -> nn.Linear:
        return self.out  # W_hy, b_y

    def step(self, prev_tokens: torch.Tensor, state: State | None,
             condition: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """prev_tokens (B,) -> log p(next) (B, V), new state. ``state=None`` is the zero state."""
        x = self._inputs(prev_tokens.unsqueeze(1), condition).squeeze(1)  # (B, E + C)
        h, state = self.rnn.step(x, state)  # (B, H)
        return torch.log_softmax(self.out(self.dropout(h)), dim=-1), state

    @torch.no_grad()
    def sample(self, n: int, max_len: int, temperature: float = 1.0, top_k: int = 0,
               condition: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> list[list[int]]:
        """Draw n sentences (token ids without BOS/EOS, at most max_len tokens each).

        Logits are divided by ``temperature`` (0 means argmax); ``top_k > 0`` keeps only the k most
        likely words at each step. PAD and BOS are never drawn. Runs in eval mode (no dropout).
        """
        was_training = self.training
        self.eval()
        device = self.out.weight.device
        prev = torch.full((n,), BOS, dtype=torch.long, device=device)
        state, drawn = None, []
        finished = torch.zeros(n, dtype=torch.bool, device=device)
        for _ in range(max_len):
            log_probs, state = self.step(prev, state, condition)  # (n, V)
            log_probs[:, [PAD, BOS]] = float("-inf")
            if temperature <= 0:
                prev = log_probs.argmax(-1)
            else:
                logits = log_probs / temperature
                if top_k > 0:
                    kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (n, 1)
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                prev = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)
            prev = prev.masked_fill(finished, EOS)  # nothing is drawn after EOS
            drawn.append(prev)
            finished |= prev == EOS
            if finished.all():
                break
        self.train(was_training)
        sentences = torch.stack(drawn, dim=1).tolist() if drawn else [[] for _ in range(n)]
        return [s[: s.index(EOS)] if EOS in s else s for s in sentences]
