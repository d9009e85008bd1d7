"""One interface over the four recurrent cells of docs/architecture.md (Cells): ``rnn``, ``lstm``, ``gru``, ``jordan``.

- ``rnn``: Elman network (Elman 1990), h_t = tanh(W_xh x_t + W_hh h_{t-1} + b), via ``nn.RNN``;
- ``lstm``: ``nn.LSTM``, whose state is the pair (h, c);
- ``gru``: the gated unit of Cho et al. 2014 (arXiv 1406.1078 Sec. 2.3), via ``nn.GRU``;
- ``jordan``: previous output fed back (Jordan 1986), ``models.jordan.JordanRNN``.
The torch cells run through cuDNN on a GPU. Every cell uses the same weights at every time step.

States follow torch's layout: a tensor (L*D, B, H), or for LSTM a tuple (h, c) of those; the batch
is dimension 1. For the Jordan cell the state is the previous output y_{t-1} (output size = H).
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.jordan import JordanRNN
from models.names import CELLS

_TORCH_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# One direction of one layer over a whole sequence: what nn.GRU / nn.RNN call (torch._VF).
_UNPACKED = {"gru": torch._VF.gru, "rnn": torch._VF.rnn_tanh}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def full_precision(like: torch.Tensor):
    """Autocast off on ``like``'s device: every recurrence runs in fp32 under mixed precision, for
    every cell alike (CPU autocast would otherwise run LSTM and Elman layers in bf16 and GRU in fp32,
    and a state carried through 50 steps in bf16 keeps ~3 significant digits). Their matmuls are
    (B, H)-small, where bf16 gains little on a CPU and per-step casts cost more than they save
    (benchmarks/throughput.py measures both)."""
    return torch.autocast(like.device.type, enabled=False)


class Recurrent(nn.Module):
    """A stack of recurrent layers chosen by name, batch first.

    ``forward`` with ``lengths`` gives each sentence the outputs and final state it would get alone:
    outputs are zero on padding and the state is taken at each sentence's last real token (lengths
    must be >= 1); GRU/Elman layers run unpacked (``_unpacked``), LSTM layers packed. ``step`` runs
    one time step for decoders.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; allowed: {', '.join(CELLS)}")
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.output_size = self.num_directions * hidden_size  # last dim of forward's outputs
        if cell == "jordan":
            self.rnn = JordanRNN(input_size, hidden_size, hidden_size, num_layers, dropout, bidirectional)
        else:
            self.rnn = _TORCH_CELLS[cell](
                input_size, hidden_size, num_layers, batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,  # torch applies it between layers only
                bidirectional=bidirectional,
            )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                state: State | None = None) -> tuple[torch.Tensor, State]:
        """x (B, T, I) -> outputs (B, T, D*H), final state, in fp32 under any autocast.
        ``state=None`` starts from zeros."""
        with full_precision(x):
            x = x.float()
            if self.cell == "jordan":
                return self.rnn(x, lengths, state)
            if lengths is None:
                return self.rnn(x, state)
            if self.cell in _UNPACKED and state is None:
                return self._unpacked(x, lengths)
            # LSTM: its final memory cell at each sentence's own end needs packing (and lengths on the CPU).
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed, state)  # h_n per sentence, in the batch's own order
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))  # (B, T, D*H)
            return out, state

    def _unpacked(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` of a GRU / Elman stack from zeros without packing: each direction of each layer
        is one whole-sequence call (torch's C++ loop on a CPU, cuDNN's kernel on a GPU, instead of
        packing's per-step loop; no lengths copied to the host). The one-pass Function of
        models.decoder_pass measured no faster here (41 steps, B 48, H 256: 52 vs 51 ms forward and
        backward for one direction, 111 vs 108 ms for two), so the encoders keep torch's.
        A sentence's padding follows it, so the forward direction's outputs at its real words are
        unaffected; the backward direction reads each sentence reversed within its own length (an index
        involution), so it too starts at the sentence's last word.
        x (B, T, I) -> outputs (B, T, D*H), zero on padding; final state (L*D, B, H) at each end."""
        B, T = x.shape[:2]
        steps = torch.arange(T, device=x.device)
        real = steps < lengths.unsqueeze(1)  # (B, T)
        reverse = torch.where(real, lengths.unsqueeze(1) - 1 - steps, steps).unsqueeze(-1)  # (B, T, 1)
        last = (lengths - 1).view(B, 1, 1).expand(B, 1, self.hidden_size)  # forward direction's end
        run = _UNPACKED[self.cell]
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = [getattr(self.rnn, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                inputs = x.gather(1, reverse.expand_as(x)) if direction else x
                h0 = x.new_zeros(1, B, self.hidden_size)
                out = run(inputs, h0, weights, True, 1, 0.0, self.training, False, True)[0]  # (B, T, H)
                if direction:
                    out = out.gather(1, reverse.expand_as(out))  # back to reading order: word 1 first
                    finals.append(out[:, 0])  # h←_1
                else:
                    finals.append(out.gather(1, last).squeeze(1))
                outputs.append(out)
            x = torch.cat(outputs, dim=-1) * real.unsqueeze(-1)  # zeros on padding, as pad_packed_sequence
            if layer + 1 < self.num_layers:
                x = F.dropout(x, self.rnn.dropout, self.training)  # between layers, as torch
        return x, torch.stack(finals)

    def step(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """One time step of a unidirectional stack: x (B, I) -> top output (B, H), new state."""
        if self.num_directions != 1:
            raise ValueError("step() needs a unidirectional stack")
        out, state = self(x.unsqueeze(1), None, state)  # (B, 1, H)
        return out.squeeze(1), state

    def hidden(self, state: State) -> torch.Tensor:
        """The h part of a state, (L*D, B, H): for LSTM drop the memory cell c."""
        return state[0] if self.cell == "lstm" else state

    def state_from_hidden(self, h: torch.Tensor) -> State:
        """A state whose h part is h (L*D, B, H); an LSTM's memory cell starts at zero."""
        h = h.contiguous()  # cuDNN wants contiguous states
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def single_torch_layer(self) -> bool:
        """True for one layer of a torch cell: the decoders then run ``cell_update`` on gates they
        partly precompute (see models.rnnsearch) instead of calling the module once per step."""
        return self.cell in _TORCH_CELLS and self.num_layers == 1 and self.num_directions == 1

    def layer_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """W_ih (G, I), W_hh (G, H), b_ih (G,), b_hh (G,) of a single torch layer; G = gates × H."""
        rnn = self.rnn
        return rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0

    @staticmethod
    def reorder_state(state: State, index: torch.Tensor) -> State:
        """Select/reorder batch entries (beam search): index (B',) into dimension 1."""
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)


def cell_update(cell: str, input_gates: torch.Tensor, hidden_gates: torch.Tensor, state: State) -> State:
    """One step of a single torch layer from its two projections, in torch's gate order:
    input_gates = W_ih x + b_ih and hidden_gates = W_hh h + b_hh, both (B, G); state as in the
    module docstring with L*D = 1. Gives the numbers of ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN``.

    gru  (Cho et al. 2014, arXiv 1406.1078 Sec. 2.3): r, z = σ(·); n = tanh(i_n + r ⊙ h_n); h' = (1-z) ⊙ n + z ⊙ h
    lstm (Hochreiter & Schmidhuber 1997): i, f, g, o; c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g); h' = σ(o) ⊙ tanh(c')
    rnn  (Elman 1990): h' = tanh(i + h)
    """
    if cell == "gru":
        h = state[0]  # (B, H)
        H = h.size(-1)
        reset, update = torch.sigmoid(input_gates[:, : 2 * H] + hidden_gates[:, : 2 * H]).chunk(2, dim=-1)
        candidate = torch.tanh(input_gates[:, 2 * H:] + reset * hidden_gates[:, 2 * H:])
        return torch.lerp(candidate, h, update).unsqueeze(0)  # n + z (h - n)
    if cell == "lstm":
        h, c = state[0][0], state[1][0]
        i, f, g, o = (input_gates + hidden_gates).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return (torch.sigmoid(o) * torch.tanh(c)).unsqueeze(0), c.unsqueeze(0)
    if cell == "rnn":
        return torch.tanh(input_gates + hidden_gates).unsqueeze(0)
    raise ValueError(f"cell_update: no gate form for cell {cell!r}")
