import torch

from models.attention import AdditiveAttention
from models.sequences import length_mask


def test_weights_are_a_distribution_over_real_words_only():
    torch.manual_seed(0)
    attention = AdditiveAttention(query_size=6, key_size=10, attention_size=7)
    lengths = torch.tensor([5, 2, 1])
    keys = torch.randn(3, 5, 10)
    mask = length_mask(lengths, 5)
    context, weights = attention(torch.randn(3, 6), keys, attention.project_keys(keys), mask)

    assert weights.shape == (3, 5) and context.shape == (3, 10)
    assert torch.allclose(weights.sum(-1), torch.ones(3))
    assert torch.all(weights[~mask] == 0)  # exactly zero, not just small
    assert torch.all(weights[mask] > 0)
    assert torch.allclose(weights[2], torch.tensor([1.0, 0, 0, 0, 0]))  # one word takes all
    assert torch.allclose(context, (weights.unsqueeze(-1) * keys).sum(1), atol=1e-6)  # c_i = Σ α_ij h_j


def test_padding_content_is_ignored():
    torch.manual_seed(0)
    attention = AdditiveAttention(4, 4, 4)
    keys = torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, False]])
    noisy = keys.clone()
    noisy[0, 2] = 100.0  # garbage on the padded position
    query = torch.ones(1, 4)
    a = attention(query, keys, attention.project_keys(keys), mask)
    b = attention(query, noisy, attention.project_keys(noisy), mask)
    assert torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])
