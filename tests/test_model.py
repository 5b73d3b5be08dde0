import pytest
import torch

from bench_suite.model import ACTIVATIONS, TwoLayerNet, effective_output_weights, init_weights


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("output", ["free", "paired"])
def test_mirrored_lecun_output_is_exactly_zero_at_init(activation, output):
    torch.manual_seed(0)
    net = TwoLayerNet(dim=17, width=12, outputs=3, activation=activation, init="mirrored_lecun", output=output,
                      generator=torch.Generator().manual_seed(5))
    x = torch.randn(64, 17) * 3
    if output == "paired":  # sigma(w^T x) - sigma(w^T x) is exactly 0 in floating point
        assert torch.equal(net(x), torch.zeros(64, 3))
    else:  # a free layer sums +v and -v terms inside one matmul: zero up to rounding
        torch.testing.assert_close(net(x), torch.zeros(64, 3), rtol=0, atol=1e-6)


def test_lecun_init_is_not_zero_and_has_lecun_scale():
    w = init_weights(2000, 400, 5, "lecun", "free", torch.Generator().manual_seed(1))
    assert w.w.shape == (2000, 400) and w.v.shape == (2000, 5)
    assert abs(w.w.var().item() - 1 / 400) < 0.05 / 400
    assert abs(w.v.var().item() - 1 / 2000) < 0.1 / 2000
    net = TwoLayerNet(dim=10, width=8, outputs=2, activation="tanh", init="lecun", output="free")
    assert net(torch.randn(4, 10)).abs().sum() > 0


def test_mirrored_init_ties_halves_and_shares_first_half_with_lecun():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    mli = init_weights(10, 6, 2, "mirrored_lecun", "free", g())
    lecun = init_weights(10, 6, 2, "lecun", "free", g())
    assert torch.equal(mli.w[5:], mli.w[:5]) and torch.equal(mli.v[5:], -mli.v[:5])
    assert torch.equal(mli.w[:5], lecun.w[:5])  # paired comparisons share the first half of W0
    assert not torch.equal(lecun.w[5:], lecun.w[:5])


def test_paired_output_equals_free_output_with_tied_weights():
    net = TwoLayerNet(dim=7, width=8, outputs=3, activation="relu", init="lecun", output="paired")
    x = torch.randn(20, 7)
    v_full = effective_output_weights(net.v.detach(), "paired")
    assert v_full.shape == (8, 3) and torch.equal(v_full[4:], -v_full[:4])
    expected = torch.relu(x @ net.w.T) @ v_full
    torch.testing.assert_close(net(x), expected)


@pytest.mark.parametrize("init,output", [("mirrored_lecun", "free"), ("lecun", "paired")])
def test_odd_width_is_refused_clearly(init, output):
    with pytest.raises(ValueError, match="odd"):
        init_weights(7, 3, 1, init, output, torch.Generator())


def test_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="valid choices"):
        TwoLayerNet(3, 4, 1, activation="sigmoidish")
    with pytest.raises(ValueError, match="valid choices"):
        init_weights(4, 3, 1, "xavier", "free", torch.Generator())
