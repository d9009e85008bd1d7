"""The FLOP count agrees with the parameter shapes it is derived from."""
from models.flops import forward_flops, training_flops
from tests.models.util import tiny_model

SIZES = {"emb_size": 8, "hidden_size": 16, "maxout_size": 12, "attention_size": 10, "num_layers": 1}


def test_lm_is_two_flops_per_weight_per_token():
    """A language model touches each weight once per token (its embedding is a look-up)."""
    model = tiny_model("lm-gru", **SIZES)
    weights = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n)
    assert forward_flops("lm-gru", SIZES, 0, model.out.out_features, [], [4, 2]) == 2 * weights * (4 + 2 + 2)


def test_attention_costs_more_and_grows_with_source_length():
    args = (SIZES, 30, 40)
    enc = forward_flops("rnnenc-gru", *args, [10], [10])
    search = forward_flops("rnnsearch-gru", *args, [10], [10])
    assert search > enc
    assert forward_flops("rnnsearch-gru", *args, [20], [10]) > search
    assert training_flops("rnnsearch-lstm", *args, [5], [6]) == 3 * forward_flops("rnnsearch-lstm", *args, [5], [6])
