"""RNNsearch (Bahdanau, Cho, Bengio 2014, "Neural Machine Translation by Jointly Learning to Align
and Translate", arXiv 1409.0473, Sec. 3 and App. A).

    h_j = [h→_j; h←_j]                                   bidirectional encoder (A.2.1), packed
    s_0 = tanh(W_s h←_1)                                  decoder initial state          (A.2.2)
    c_i = Σ_j α_ij h_j,  α_i = attention(s_{i-1}, h)      additive attention (models.attention)
    t_i = maxout(U_o s_{i-1} + V_o E y_{i-1} + C_o c_i)   deep output                    (A.2.2)
    p(y_i | y_<i, x) = softmax(W_o t_i)
    s_i = f(s_{i-1}, [E y_{i-1}; c_i])                     decoder recurrence

As in the paper, the word y_i is predicted from s_{i-1} (with y_{i-1} and c_i); s_i is computed
afterwards and is first used for y_{i+1}. c_i depends on s_{i-1}, so teacher forcing is a loop over
target steps. With several layers the top layer's state is the attention query and W_s
initialises every decoder layer; an LSTM's memory cell starts at zero.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import AdditiveAttention
from models.cells import Recurrent, State, cell_update, full_precision
from models.decoder_pass import decoder_pass
from models.encoder_decoder import EncoderDecoder, Memory
from models.maxout import MaxoutOutput
from models.sequences import length_mask
from models.special_tokens import PAD


class GateWeights(NamedTuple):
    """The decoder cell's weights as ``RNNSearch._recur_gates`` uses them (G = gates × H)."""

    word: torch.Tensor  # W_e (G, E)
    word_bias: torch.Tensor  # b_ih (G,)
    context: torch.Tensor  # W_cᵀ (2H, G)
    state: torch.Tensor  # [W; W_hh] (A + G, H)
    state_bias: torch.Tensor  # [0; b_hh] (A + G,)
    attention_size: int  # A


class RNNSearch(EncoderDecoder):
    def __init__(self, src_vocab: int, tgt_vocab: int, cell: str = "gru", emb_size: int = 620,
                 hidden_size: int = 1000, maxout_size: int = 500, attention_size: int = 1000,
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        H, E = hidden_size, emb_size
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.encoder = Recurrent(cell, E, H, num_layers, dropout, bidirectional=True)  # annotations 2H
        self.attention = AdditiveAttention(H, 2 * H, attention_size)
        self.to_init = nn.Linear(H, num_layers * H)  # W_s, one slice per decoder layer
        self.decoder = Recurrent(cell, E + 2 * H, H, num_layers, dropout)
        self.output = MaxoutOutput(H, E, 2 * H, maxout_size, tgt_vocab, dropout)
        self._gate_cache: GateWeights | None = None  # set only inside decoding()

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Memory:
        lengths = src_lengths.clamp(min=1)  # an empty source reads one PAD (zero) embedding
        annotations, state = self.encoder(self.dropout(self.src_embed(src)), lengths)  # (B, T_x, 2H)
        # Final state of the top backward layer: it ends on word 1, so it is h←_1.
        backward_first = self.encoder.hidden(state)[-1]  # (B, H)
        return {  # fp32 whatever the autocast: the decoder's recurrence reads them at every step
            "annotations": annotations.float(),  # h_j (B, T_x, 2H)
            "keys": self.attention.project_keys(annotations).float(),  # U h_j (B, T_x, A)
            "mask": length_mask(lengths, src.size(1)),  # (B, T_x)
            "backward_first": backward_first.float(),  # h←_1 (B, H)
        }

    def init_state(self, memory: Memory) -> State:
        with full_precision(memory["backward_first"]):
            s0 = torch.tanh(self.to_init(memory["backward_first"]))  # (B, L*H)
        s0 = s0.view(-1, self.num_layers, self.hidden_size).transpose(0, 1)  # (L, B, H)
        return self.decoder.state_from_hidden(s0)

    def _recur(self, e: torch.Tensor, state: State,
               memory: Memory) -> tuple[torch.Tensor, torch.Tensor, State, torch.Tensor]:
        """Embedded y_{i-1} (B, E) -> s_{i-1} (B, H), c_i (B, 2H), s_i, α_i (B, T_x); any cell or depth.

        Only what the recurrence needs; the deep output (the vocabulary-sized layer) depends on
        nothing recurrent, so teacher forcing applies it to all steps at once after the loop.
        """
        s_prev = self.decoder.hidden(state)[-1]  # s_{i-1} (B, H), top layer
        context, alpha = self.attention(s_prev, memory["annotations"], memory["keys"], memory["mask"])
        _, state = self.decoder.step(torch.cat([e, context], dim=-1), state)  # s_i
        return s_prev, context, state, alpha

    def _gate_weights(self) -> GateWeights:
        """The decoder cell's weights split for ``_recur_gates`` (a single torch layer).

        The cell reads [E y_{i-1}; c_i]: W_ih = [W_e | W_c]. W_e E y_{i-1} does not depend on the
        recurrence, so teacher forcing computes it for all steps in one matmul. s_{i-1} enters both
        the attention query W s_{i-1} and the cell's W_hh s_{i-1}: one matmul per step for both.
        """
        w_ih, w_hh, b_ih, b_hh = self.decoder.layer_weights()
        E = self.tgt_embed.embedding_dim
        w_query = self.attention.W.weight  # (A, H)
        if self._gate_cache is not None:  # inside decoding(): the weights cannot change
            return self._gate_cache
        return GateWeights(w_ih[:, :E], b_ih, w_ih[:, E:].t(), torch.cat([w_query, w_hh]),
                           torch.cat([b_hh.new_zeros(w_query.size(0)), b_hh]), w_query.size(0))

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """The concatenated gate weights built once for a whole search, not by a torch.cat per step.
        (A cache keyed on the weights' version would go stale: fused Adam updates in place without
        bumping it.)"""
        self._gate_cache = self._gate_weights() if self.decoder.single_torch_layer() else None
        try:
            yield
        finally:
            self._gate_cache = None

    def _recur_gates(self, word_gates: torch.Tensor, state: State, memory: Memory,
                     weights: GateWeights) -> tuple[torch.Tensor, torch.Tensor, State, torch.Tensor]:
        """``_recur`` for a single torch layer, from W_e E y_{i-1} + b_ih (B, G): same numbers, fewer ops."""
        s_prev = self.decoder.hidden(state)[-1]  # s_{i-1} (B, H)
        query, hidden_gates = F.linear(s_prev, weights.state, weights.state_bias).split(
            [weights.attention_size, word_gates.size(-1)], dim=-1)  # W s_{i-1} (B, A), W_hh s_{i-1} + b_hh (B, G)
        context, alpha = self.attention.attend(query, memory["annotations"], memory["keys"], memory["mask"])
        input_gates = torch.addmm(word_gates, context, weights.context)  # W_ih [E y; c] + b_ih (B, G)
        return s_prev, context, cell_update(self.decoder.cell, input_gates, hidden_gates, state), alpha

    def step(self, prev_tokens: torch.Tensor, state: State,
             memory: Memory) -> tuple[torch.Tensor, State, torch.Tensor]:
        e = self.dropout(self.tgt_embed(prev_tokens))  # (B, E)
        with full_precision(e):
            if self.decoder.single_torch_layer():
                weights = self._gate_weights()
                s_prev, context, state, alpha = self._recur_gates(
                    F.linear(e, weights.word, weights.word_bias), state, memory, weights)
            else:
                s_prev, context, state, alpha = self._recur(e, state, memory)
        return torch.log_softmax(self.output(s_prev, e, context), dim=-1), state, alpha

    @property
    def projection(self) -> nn.Linear:
        return self.output.out  # W_o

    def features(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor,
                 tgt_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """tgt_lengths is not needed: steps past a sentence's end only produce logits the loss ignores."""
        memory = self.encode(src, src_lengths)
        emb = self.dropout(self.tgt_embed(tgt_in))  # (B, T_y, E), all steps at once
        with full_precision(emb):
            state = self.init_state(memory)
            if self.decoder.single_torch_layer():
                states, contexts, alphas = self.teacher_forced_pass(emb, state, memory)
            else:
                states, contexts, alphas = self.teacher_forced_steps(emb, state, memory)
        return self.output.features(states, emb, contexts), alphas  # t_i (B, T_y, M), (B, T_y, T_x)

    def teacher_forced_pass(self, emb: torch.Tensor, state: State,
                            memory: Memory) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The single-layer decoder over all steps as one autograd Function (models.decoder_pass):
        emb (B, T_y, E) -> s_{i-1} (B, T_y, H), c_i (B, T_y, 2H), α_i (B, T_y, T_x)."""
        w_ih, w_hh, b_ih, b_hh = self.decoder.layer_weights()
        E = emb.size(-1)
        word_gates = F.linear(emb, w_ih[:, :E], b_ih)  # W_e E y_{i-1} + b_ih (B, T_y, G), all steps at once
        h = self.decoder.hidden(state)[-1]
        c = state[1][-1] if self.decoder.cell == "lstm" else None
        attention = {"annotations": memory["annotations"], "keys": memory["keys"], "mask": memory["mask"],
                     "w_query": self.attention.W.weight, "w_context": w_ih[:, E:], "v": self.attention.v.weight}
        states, contexts, alphas = decoder_pass(self.decoder.cell, word_gates, h, c, w_hh, b_hh, attention)
        return states[:-1].transpose(0, 1), contexts.transpose(0, 1), alphas.transpose(0, 1)

    def teacher_forced_steps(self, emb: torch.Tensor, state: State, memory: Memory,
                             gates: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``teacher_forced_pass`` one step at a time under autograd: any cell or depth (``gates``: the
        single-layer ``_recur_gates`` form, the path before models.decoder_pass; kept for its tests)."""
        if gates:
            weights = self._gate_weights()
            word_gates = F.linear(emb, weights.word, weights.word_bias)  # (B, T_y, G), all steps at once
            recur, inputs = partial(self._recur_gates, memory=memory, weights=weights), word_gates
        else:
            recur, inputs = partial(self._recur, memory=memory), emb
        states, contexts, alphas = [], [], []
        for step_input in inputs.unbind(1):  # unbind: one backward for all steps, not one per slice
            s_prev, context, state, alpha = recur(step_input, state)
            states.append(s_prev)
            contexts.append(context)
            alphas.append(alpha)
        return torch.stack(states, dim=1), torch.stack(contexts, dim=1), torch.stack(alphas, dim=1)
