"""Model FLOPs of a batch, counted from the layer shapes: the numerator of a roofline fraction.

Only matrix products count (2 FLOPs per multiply-add); element-wise work (gates, tanh, softmax),
embedding look-ups and the optimizer do not, as in the usual "model FLOPs" of MFU figures. A
training step is 3× the forward pass (backward: one product for the input gradient and one for the
weight gradient per forward product). Per token, with G = gates × H (rnn 1, gru 3, lstm 4):

    recurrent layer, input I                  2 G (I + H)             per token it reads
    Jordan layer (models.jordan)              2 H (I + 2H)            x→h, y→h, h→y
    RNNenc   encoder                          layer(E) per source word, then V, V' per sentence
             decoder + deep output + softmax  layer(E + H) + 2 (2H + E) 2M + 2 M V    per target token
    RNNsearch bi-encoder + keys U h_j         2 layer(E) + 2 (2H) A   per source word
             attention of target step i       2 H A (W s) + 2 T_x A (vᵀ tanh) + 2 T_x 2H (Σ α h)
             decoder + deep output + softmax  layer(E + 2H) + 2 (3H + E) 2M + 2 M V
    LM                                        layer(E) + 2 H V        per target token
Layers above the first read H (2H when bidirectional) instead of E. Target tokens include EOS.
"""
from __future__ import annotations

from collections.abc import Sequence

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def recurrent_layer(cell: str, input_size: int, hidden_size: int) -> int:
    """Forward FLOPs of one recurrent layer per time step."""
    if cell == "jordan":
        return 2 * hidden_size * (input_size + 2 * hidden_size)
    return 2 * GATES[cell] * hidden_size * (input_size + hidden_size)


def stack(cell: str, input_size: int, hidden_size: int, num_layers: int, directions: int = 1) -> int:
    """Forward FLOPs of a stack of layers per time step, all directions."""
    first = recurrent_layer(cell, input_size, hidden_size)
    above = recurrent_layer(cell, directions * hidden_size, hidden_size)
    return directions * (first + (num_layers - 1) * above)


def forward_flops(name: str, sizes: dict, src_vocab: int, tgt_vocab: int, src_lengths: Sequence[int],
                  tgt_lengths: Sequence[int]) -> int:
    """Forward FLOPs of model ``name`` (e.g. ``rnnsearch-gru``) over sentences of the given real
    lengths (target lengths without EOS; it is added here)."""
    family, _, cell = name.partition("-")
    E, H, L = sizes["emb_size"], sizes["hidden_size"], sizes.get("num_layers", 1)
    M, A, V = sizes.get("maxout_size", 0), sizes.get("attention_size", 0), tgt_vocab
    target_tokens = sum(tgt_lengths) + len(tgt_lengths)  # + EOS
    if family == "lm":
        return target_tokens * (stack(cell, E, H, L) + 2 * H * V)
    source_words = sum(src_lengths)
    deep_output = 2 * M * V
    if family == "rnnenc":
        per_sentence = 2 * H * H + 2 * H * L * H  # V, V'
        encoder = source_words * stack(cell, E, H, L)
        decoder = target_tokens * (stack(cell, E + H, H, L) + 2 * (2 * H + E) * 2 * M + deep_output)
        return len(src_lengths) * per_sentence + encoder + decoder
    if family == "rnnsearch":
        encoder = source_words * (stack(cell, E, H, L, directions=2) + 2 * 2 * H * A)
        per_sentence = 2 * H * L * H  # W_s
        attention = sum((y + 1) * (2 * H * A + 2 * x * A + 2 * x * 2 * H) for x, y in zip(src_lengths, tgt_lengths))
        decoder = target_tokens * (stack(cell, E + 2 * H, H, L) + 2 * (3 * H + E) * 2 * M + deep_output)
        return len(src_lengths) * per_sentence + encoder + attention + decoder
    raise ValueError(f"unknown model family in {name!r}")


def training_flops(*args, **kwargs) -> int:
    """One optimizer step's model FLOPs: forward + backward (2× forward)."""
    return 3 * forward_flops(*args, **kwargs)
