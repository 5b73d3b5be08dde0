
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_suite.projection import project_frobenius_ball

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
