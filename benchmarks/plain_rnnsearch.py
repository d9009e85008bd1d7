"""A plain single-file PyTorch RNNsearch trainer: the reference throughput.py compares against.

What a tutorial would write for Bahdanau et al.'s model at the same sizes (bi-GRU encoder,
additive attention, GRUCell decoder, deep output with maxout, fp32, Adam, gradient clipping):
no Lightning, no fused gates, F.cross_entropy. Its target tokens/s is the "plain fp32 loop"
number of benchmarks/throughput.py's `--plain` row.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class PlainRNNSearch(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, emb: int, hidden: int, maxout: int, attention: int):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(src_vocab, emb), nn.Embedding(tgt_vocab, emb)
        self.encoder = nn.GRU(emb, hidden, batch_first=True, bidirectional=True)
        self.W, self.U = nn.Linear(hidden, attention, bias=False), nn.Linear(2 * hidden, attention, bias=False)
        self.v = nn.Linear(attention, 1, bias=False)
        self.init = nn.Linear(hidden, hidden)
        self.cell = nn.GRUCell(emb + 2 * hidden, hidden)
        self.pre = nn.Linear(hidden + emb + 2 * hidden, 2 * maxout)
        self.out = nn.Linear(maxout, tgt_vocab)
        self.maxout = maxout

    def forward(self, src, src_lengths, tgt_in):
        packed = pack_padded_sequence(self.src_embed(src), src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, last = self.encoder(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=src.size(1))  # (B, T_x, 2H)
        keys = self.U(h)
        mask = torch.arange(src.size(1)) < src_lengths.unsqueeze(1)
        s = torch.tanh(self.init(last[1]))
        e = self.tgt_embed(tgt_in)
        outputs = []
        for i in range(tgt_in.size(1)):
            energy = self.v(torch.tanh(self.W(s).unsqueeze(1) + keys)).squeeze(-1).masked_fill(~mask, float("-inf"))
            context = torch.bmm(torch.softmax(energy, -1).unsqueeze(1), h).squeeze(1)
            outputs.append(torch.cat([s, e[:, i], context], -1))
            s = self.cell(torch.cat([e[:, i], context], -1), s)
        t = self.pre(torch.stack(outputs, 1)).unflatten(-1, (self.maxout, 2)).amax(-1)
        return self.out(t)


def train_step(model: PlainRNNSearch, optimizer, src, src_lengths, tgt_in, tgt_out) -> None:
    logits = model(src, src_lengths, tgt_in)
    loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=0)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
