
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_suite.model.projection import project_frobenius_ball, project_per_neuron_balls

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6))


@st.composite
def problems(draw):
    rows, cols = draw(shapes)
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    w = w0 + draw(st.floats(0.0, 10.0)) * torch.randn(rows, cols, generator=g, dtype=torch.float64)
    eps = draw(st.floats(1e-3, 10.0))
    return w, w0, eps


@settings(max_examples=200, deadline=None)
@given(problems())
def test_result_is_inside_the_ball(problem):
    w, w0, eps = problem
    p = project_frobenius_ball(w, w0, eps)
    assert torch.linalg.vector_norm(p - w0) <= eps * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(problems())
def test_identity_inside_and_idempotent(problem):
    w, w0, eps = problem
    p = project_frobenius_ball(w, w0, eps)
    if torch.linalg.vector_norm(w - w0) <= eps:
        assert torch.equal(p, w)  # bit for bit: points inside are not rewritten
    pp = project_frobenius_ball(p, w0, eps)
    torch.testing.assert_close(pp, p, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(0, 2**31 - 1))
def test_projection_is_the_nearest_point_of_the_ball(problem, seed):
    w, w0, eps = problem
    p = project_frobenius_ball(w, w0, eps)
    dist = torch.linalg.vector_norm(w - p)
    g = torch.Generator().manual_seed(seed)
    for _ in range(20):  # random points of the ball are never nearer than the projection
        z = torch.randn(w.shape, generator=g, dtype=torch.float64)
        z = w0 + z / torch.linalg.vector_norm(z) * eps * torch.rand((), generator=g, dtype=torch.float64)
        assert torch.linalg.vector_norm(w - z) >= dist - 1e-9
    # and the obtuse-angle characterisation of a projection onto a convex set holds
    z = w0 + eps * (w - w0) / max(torch.linalg.vector_norm(w - w0).item(), 1e-300) * 0.5
    assert torch.sum((w - p) * (z - p)) <= 1e-9


def test_known_value():
    w0 = torch.zeros(1, 2, dtype=torch.float64)
    w = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(project_frobenius_ball(w, w0, 1.0), torch.tensor([[0.6, 0.8]], dtype=torch.float64))


def test_negative_radius_is_refused():
    with pytest.raises(ValueError):
        project_frobenius_ball(torch.zeros(2, 2), torch.zeros(2, 2), -1.0)


# ------------------------------------------------------------------------------------------
# per-unit balls ||w_j - w_j0|| <= eps / sqrt(m) (mli_paired_pgd_per_neuron)
# ------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(problems())
def test_per_neuron_rows_are_inside_their_balls_and_the_whole_inside_the_frobenius_ball(problem):
    w, w0, eps = problem
    p = project_per_neuron_balls(w, w0, eps)
    m = w.shape[0]
    assert torch.linalg.vector_norm(p - w0, dim=1).max() <= eps / m**0.5 * (1 + 1e-12)
    assert torch.linalg.vector_norm(p - w0) <= eps * (1 + 1e-12)  # the total radius matches


@settings(max_examples=200, deadline=None)
@given(problems())
def test_per_neuron_is_row_by_row_identity_inside_and_idempotent(problem):
    w, w0, eps = problem
    p = project_per_neuron_balls(w, w0, eps)
    inside = torch.linalg.vector_norm(w - w0, dim=1) <= eps / w.shape[0] ** 0.5
    assert torch.equal(p[inside], w[inside])  # rows inside are not rewritten, bit for bit
    torch.testing.assert_close(project_per_neuron_balls(p, w0, eps), p, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(0, 2**31 - 1))
def test_per_neuron_is_the_nearest_point_of_the_product_of_balls(problem, seed):
    w, w0, eps = problem
    p = project_per_neuron_balls(w, w0, eps)
    radius = eps / w.shape[0] ** 0.5
    dist = torch.linalg.vector_norm(w - p)
    g = torch.Generator().manual_seed(seed)
    for _ in range(20):  # random points of the set (each row in its ball) are never nearer
        z = torch.randn(w.shape, generator=g, dtype=torch.float64)
        scale = radius * torch.rand(w.shape[0], 1, generator=g, dtype=torch.float64)
        z = w0 + z / torch.linalg.vector_norm(z, dim=1, keepdim=True) * scale
        assert torch.linalg.vector_norm(w - z) >= dist - 1e-9


def test_per_neuron_known_value_and_one_row_equals_the_frobenius_ball():
    w0 = torch.zeros(2, 2, dtype=torch.float64)
    w = torch.tensor([[3.0, 4.0], [0.1, 0.0]], dtype=torch.float64)
    r = 2**0.5  # eps_j = eps / sqrt(2) = 1
    torch.testing.assert_close(project_per_neuron_balls(w, w0, r),
                               torch.tensor([[0.6, 0.8], [0.1, 0.0]], dtype=torch.float64))
    one = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert torch.equal(project_per_neuron_balls(one, w0[:1], 1.0), project_frobenius_ball(one, w0[:1], 1.0))
    with pytest.raises(ValueError):
        project_per_neuron_balls(w, w0, -1.0)
