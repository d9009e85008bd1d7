"""Every architecture can memorise a fixed batch of 16 random pairs: the gradients reach every part."""

import pytest
import torch

from models.names import MODEL_NAMES
from models.search import greedy_search
from tests.models.util import fixed_pairs, tiny_model, train

SIZES = dict(emb_size=16, hidden_size=32, maxout_size=16, attention_size=16)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_overfits_16_random_pairs(name):
    src, src_lengths, y, y_lengths = fixed_pairs(16, seed=0)
    # A language model cannot tell 16 random sentences apart from nothing; a one-hot condition
    # names the sentence (and exercises the conditioning input).
    extra, condition = (dict(cond_size=16), torch.eye(16)) if name.startswith("lm-") else ({}, None)
    model = tiny_model(name, **SIZES, **extra)
    loss = train(model, src, src_lengths, y, y_lengths, steps=300, stop_below=0.02, condition=condition)
    assert loss < 0.05
    if condition is None:  # memorised: greedy decoding gives the training targets back
        targets = [row[:n].tolist() for row, n in zip(y, y_lengths)]
        assert [h.tokens for h in greedy_search(model, src, src_lengths)] == targets
