"""The chunked cross-entropy gives F.cross_entropy's values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from models import loss as loss_module
from models.loss import masked_nll
from models.special_tokens import PAD


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_torch_cross_entropy(monkeypatch, smoothing, reduction):
    monkeypatch.setattr(loss_module, "CHUNK_ROWS", 4)  # several chunks and a ragged last one
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(3, 5, 11, generator=g)).requires_grad_()
    targets = torch.randint(1, 11, (3, 5), generator=g)
    targets[0, 3:] = PAD
    targets[2, 1:] = PAD
    ours = masked_nll(logits, targets, reduction, smoothing)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD, reduction=reduction,
                             label_smoothing=smoothing)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-6)
    assert grad_ours[2, 1:].abs().max() == 0  # padding gets no gradient


def test_bf16_logits_get_a_bf16_gradient_and_an_fp32_loss():
    logits = torch.randn(6, 7, dtype=torch.bfloat16).view(2, 3, 7).requires_grad_()
    targets = torch.tensor([[1, 2, 3], [4, 5, PAD]])
    loss = masked_nll(logits, targets)
    loss.backward()
    assert loss.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    reference = F.cross_entropy(logits.detach().float().flatten(0, 1), targets.flatten(), ignore_index=PAD)
    assert torch.allclose(loss, reference, atol=1e-5)


def test_all_padding_is_zero_not_nan():
    logits = torch.randn(1, 2, 5, requires_grad=True)
    assert masked_nll(logits, torch.full((1, 2), PAD)).item() == 0


def test_chunks_are_cache_sized_on_a_cpu_and_launch_sized_on_a_gpu():
    from models.loss import CHUNK_ROWS, chunk_rows

    assert chunk_rows("cpu", 30000) == CHUNK_ROWS
    assert chunk_rows("cuda", 30000) >= 4080  # a paper-size batch (80 × 51 rows) in one chunk
    assert chunk_rows("cuda", 10**9) == CHUNK_ROWS  # never fewer rows than on a CPU


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_projected_loss_equals_the_loss_of_the_projection(monkeypatch, smoothing, reduction):
    """projected_nll(x, W) = masked_nll(W x): values and the gradients of x, W and b (fp32)."""
    from models.loss import projected_nll

    monkeypatch.setattr(loss_module, "CHUNK_ROWS", 4)  # several chunks and a ragged last one
    g = torch.Generator().manual_seed(0)
    features = torch.randn(3, 5, 6, generator=g, requires_grad=True)
    projection = torch.nn.Linear(6, 11)
    targets = torch.randint(1, 11, (3, 5), generator=g)
    targets[0, 3:] = PAD
    targets[2, 1:] = PAD
    inputs = [features, *projection.parameters()]
    ours = projected_nll(features, projection, targets, reduction, smoothing)
    grads_ours = torch.autograd.grad(ours, inputs)
    theirs = masked_nll(projection(features), targets, reduction, smoothing)
    grads_theirs = torch.autograd.grad(theirs, inputs)
    assert torch.allclose(ours, theirs, atol=1e-5)
    for a, b in zip(grads_ours, grads_theirs):
        assert torch.allclose(a, b, atol=1e-6)
    assert grads_ours[0][2, 1:].abs().max() == 0  # padding gets no gradient


def test_projected_loss_under_autocast_is_as_accurate_as_f_linear_under_autocast():
    """Matmuls in bf16 as autocast's F.linear would run them: values and gradients as close to a float64
    reference as those of F.linear + masked_nll under the same autocast (bf16 rounding, not a bug)."""
    from models.loss import projected_nll

    g = torch.Generator().manual_seed(1)
    features = torch.randn(4, 9, 32, generator=g).requires_grad_()
    projection = torch.nn.Linear(32, 50)
    targets = torch.randint(1, 50, (4, 9), generator=g)
    targets[3, 5:] = PAD
    inputs = [features, *projection.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = projected_nll(features, projection, targets)
        theirs = masked_nll(projection(features), targets)
    grads_ours, grads_theirs = torch.autograd.grad(ours, inputs), torch.autograd.grad(theirs, inputs)
    exact = torch.nn.Linear(32, 50).double()
    exact.load_state_dict({k: v.double() for k, v in projection.state_dict().items()})
    features64 = features.detach().double().requires_grad_()
    reference = masked_nll(exact(features64), targets)
    grads_reference = torch.autograd.grad(reference, [features64, *exact.parameters()])
    assert ours.dtype == torch.float32 and abs(float(ours) - float(reference)) < 1e-3
    for a, b, r in zip(grads_ours, grads_theirs, grads_reference):
        assert a.dtype == b.dtype == torch.float32  # the parameters' gradients in their own dtype
        assert (a - r).abs().max() <= 2 * (b - r).abs().max() + 1e-6
        assert (a - r).abs().max() < 0.01 * r.abs().max()


def test_projected_loss_without_gradients_keeps_nothing(monkeypatch):
    from models.loss import projected_nll

    monkeypatch.setattr(loss_module, "CHUNK_ROWS", 4)  # the logits buffer is 4 × 7, G would be 6 × 7
    features, projection = torch.randn(2, 3, 4), torch.nn.Linear(4, 7)
    targets = torch.tensor([[1, 2, PAD], [3, 4, 5]])
    made = []
    original_empty = torch.Tensor.new_empty
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "new_empty", lambda self, *size, **kw: made.append(size) or original_empty(self, *size, **kw))
        loss = projected_nll(features, projection, targets, reduction="sum")
    assert loss.grad_fn is None
    assert (4, 7) in made and (6, 7) not in made  # no N × V gradient under no_grad (the parameters still require it)
    assert torch.allclose(loss, masked_nll(projection(features), targets, reduction="sum"), atol=1e-5)
