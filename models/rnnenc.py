"""RNNenc: the fixed-vector encoder-decoder of Cho et al. 2014
("Learning Phrase Representations using RNN Encoder-Decoder…", arXiv 1406.1078, Sec. 2.2 and
App. A.1; evaluated as "RNNenc" in arXiv 1409.1259 and as "RNNencdec" in arXiv 1409.0473).

    h_t   = f(h_{t-1}, E_x x_t)                         encoder, read left to right
    c     = tanh(V h_T)                                  summary of the whole sentence  (A.1.1)
    h'_0  = tanh(V' c)                                   decoder initial state          (A.1.2)
    h'_t  = f(h'_{t-1}, [E_y y_{t-1}; c])                c enters every decoder step
    p(y_t | y_<t, x) = softmax(W_o maxout(O_h h'_t + O_y E_y y_{t-1} + O_c c))   deep output

c is the only path from source to target: the bottleneck this project measures. h_T is the state
at each sentence's own last word. Feeding [E y; c] to the cell equals
the paper's extra C c term in every gate. With several layers h_T is the top layer's state and V'
initialises every decoder layer; an LSTM's memory cell starts at zero.

Controls for the ablations (docs/ablations.md), each one knob, off by default:

    context_size C          |c| apart from the hidden size H: V is (C × H), and c (C) enters the
                            decoder's gates and the deep output (the capacity of the bottleneck)
    reverse_source          the encoder reads x_T … x_1 (Sutskever et al. 2014 §3.3): the first
                            target words then depend on the most recent source words (time lag)
    bidirectional           c = tanh(V [h→_T; h←_1]) from a bidirectional encoder, as RNNsearch's
                            annotations are built: both ends of the sentence are recent in c
"""

import torch
import torch.nn.functional as F
from torch import nn

from models.cells import Recurrent, State, full_precision
from models.decoder_pass import decoder_pass
from models.encoder_decoder import EncoderDecoder, Memory
from models.maxout import MaxoutOutput
from models.sequences import reverse_padded
from models.special_tokens import PAD


class RNNEncoderDecoder(EncoderDecoder):
    def __init__(self, src_vocab: int, tgt_vocab: int, cell: str = "gru", emb_size: int = 620,
                 hidden_size: int = 1000, maxout_size: int = 500, num_layers: int = 1, dropout: float = 0.0,
                 context_size: int | None = None, reverse_source: bool = False, bidirectional: bool = False):
        super().__init__()
        H, E = hidden_size, emb_size
        C = context_size or hidden_size  # |c|
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.reverse_source, self.bidirectional = reverse_source, bidirectional
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.encoder = Recurrent(cell, E, H, num_layers, dropout, bidirectional=bidirectional)
        self.to_context = nn.Linear(self.encoder.output_size, C)  # V
        self.to_init = nn.Linear(C, num_layers * H)  # V', one slice per decoder layer
        self.decoder = Recurrent(cell, E + C, H, num_layers, dropout)
        self.output = MaxoutOutput(H, E, C, maxout_size, tgt_vocab, dropout)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Memory:
        lengths = src_lengths.clamp(min=1)  # an empty source reads one PAD (zero) embedding
        if self.reverse_source:
            src = reverse_padded(src, lengths)  # (B, T_x)
        embedded = self.dropout(self.src_embed(src))  # (B, T_x, E)
        if self.bidirectional:  # packed: each direction's final state at the sentence's own ends
            _, state = self.encoder(embedded, lengths)
            top = self.encoder.hidden(state)[-2:]  # (2, B, H): h→_T, h←_1 of the top layer
            summary = torch.cat([top[0], top[1]], dim=-1)  # (B, 2H)
        else:
            # Unpacked, one whole-sequence call (no packing's per-step loop): padding follows each
            # sentence, so the top layer's output at its last word is its h_T.
            outputs, _ = self.encoder(embedded)  # (B, T_x, H)
            summary = outputs[torch.arange(src.size(0), device=src.device), lengths - 1]  # h_T (B, H)
        # fp32 whatever the autocast: the decoder reads c at every step.
        return {"context": torch.tanh(self.to_context(summary)).float()}  # c (B, C)

    def init_state(self, memory: Memory) -> State:
        c = memory["context"]  # (B, C)
        with full_precision(c):
            h0 = torch.tanh(self.to_init(c))  # (B, L*H)
        h0 = h0.view(-1, self.num_layers, self.hidden_size).transpose(0, 1)  # (L, B, H)
        return self.decoder.state_from_hidden(h0)

    def step(self, prev_tokens: torch.Tensor, state: State,
             memory: Memory) -> tuple[torch.Tensor, State, None]:
        c = memory["context"]  # (B, C)
        e = self.dropout(self.tgt_embed(prev_tokens))  # (B, E)
        with full_precision(e):
            h, state = self.decoder.step(torch.cat([e, c], dim=-1), state)  # h'_t (B, H)
        logits = self.output(h, e, c)  # (B, V)
        return torch.log_softmax(logits, dim=-1), state, None

    @property
    def projection(self) -> nn.Linear:
        return self.output.out  # W_o

    def features(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor,
                 tgt_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """Unpacked: steps past a sentence's end only produce logits the loss ignores."""
        memory = self.encode(src, src_lengths)
        c = memory["context"].unsqueeze(1).expand(-1, tgt_in.size(1), -1)  # (B, T_y, C)
        e = self.dropout(self.tgt_embed(tgt_in))  # (B, T_y, E)
        with full_precision(e):
            state = self.init_state(memory)
            if self.decoder.single_torch_layer():
                h = self.teacher_forced_pass(e, memory["context"], state)
            else:  # no attention: all steps in one module call (cuDNN on a GPU)
                h, _ = self.decoder(torch.cat([e, c], dim=-1), None, state)  # (B, T_y, H)
        return self.output.features(h, e, c), None  # (B, T_y, M)

    def teacher_forced_pass(self, e: torch.Tensor, c: torch.Tensor, state: State) -> torch.Tensor:
        """The single-layer decoder over all steps as one autograd Function (models.decoder_pass):
        e (B, T_y, E), c (B, H) -> h'_1 … h'_T (B, T_y, H). The cell reads [E y_{t-1}; c]: its input
        gates are W_e E y_{t-1} + b_ih for all steps in one matmul plus W_c c once per sentence (c
        is the same at every step, A.1.2), not a (B·T_y, E + H) matmul over c repeated."""
        w_ih, w_hh, b_ih, b_hh = self.decoder.layer_weights()
        E = e.size(-1)
        word_gates = F.linear(e, w_ih[:, :E], b_ih) + F.linear(c, w_ih[:, E:]).unsqueeze(1)  # (B, T_y, G)
        h = self.decoder.hidden(state)[-1]
        memory_cell = state[1][-1] if self.decoder.cell == "lstm" else None
        states, _, _ = decoder_pass(self.decoder.cell, word_gates, h, memory_cell, w_hh, b_hh)
        return states[1:].transpose(0, 1)
