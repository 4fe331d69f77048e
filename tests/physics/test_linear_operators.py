"""Properties every linear operator must have, checked on each one of them."""

import pytest
import torch

from eilab.physics import CT, MRI, CompressedSensing, GaussianNoise, Inpainting

# name -> (factory, input shape (C, H, W), whether A_dagger is the exact pseudo-inverse)
OPERATORS = {
    "ct": (lambda **kw: CT(16, n_views=7, **kw), (1, 16, 16), False),
    "ct_circle": (lambda **kw: CT(17, n_views=9, circle=True, **kw), (2, 17, 17), False),
    "inpainting": (lambda **kw: Inpainting(12, drop_rate=0.3, **kw), (3, 12, 12), True),
    "cs": (lambda **kw: CompressedSensing((1, 8, 8), m=20, **kw), (1, 8, 8), True),
    "mri": (lambda **kw: MRI(16, acceleration=4, **kw), (2, 16, 16), True),
}
PSEUDO_INVERSES = [name for name, (_, _, exact) in OPERATORS.items() if exact]
SEEDED = ["inpainting", "cs", "mri"]  # drawn from a seed; CT is fixed by its geometry alone


def make(name: str, device: str, dtype: torch.dtype, **kwargs):
    factory, shape, _ = OPERATORS[name]
    return factory(**kwargs).to(device=device, dtype=dtype), shape


def random_pair(physics, shape, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype, device = physics_dtype(physics), physics_device(physics)
    x = torch.randn(batch, *shape, generator=g, dtype=dtype).to(device)
    y = torch.randn(physics.A(x).shape, generator=g, dtype=dtype).to(device)
    return x, y


def physics_dtype(physics) -> torch.dtype:
    floats = [b for b in physics.buffers() if b.is_floating_point()]
    return floats[0].dtype


def physics_device(physics) -> torch.device:
    return next(physics.buffers()).device


@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_adjoint_is_exact(name, dtype, tol, device):
    physics, shape = make(name, device, dtype)
    x, y = random_pair(physics, shape)
    lhs = torch.sum(physics.A(x) * y)
    rhs = torch.sum(x * physics.A_adjoint(y))
    assert abs(lhs - rhs) / abs(lhs) < tol


@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize("method", ["A", "A_adjoint", "A_dagger"])
def test_autograd_gradient_matches_finite_differences(name, method, device):
    """Backward passes agree with the forward: CT's are hand-written sparse transposes, and
    any operator that leaves autograd (detach, numpy, no_grad) would give no gradient. On CUDA
    two backward passes may differ by rounding: cuSPARSE sums a row in varying order (seen
    for ct_circle on an H200), hence a non-zero nondet_tol there."""
    physics, shape = make(name, device, torch.float64)
    x, y = random_pair(physics, shape, batch=1, seed=1)
    inputs = (x if method == "A" else y).requires_grad_(True)
    nondet_tol = 1e-10 if device == "cuda" else 0.0
    assert torch.autograd.gradcheck(
        getattr(physics, method),
        inputs,
        atol=1e-10,
        rtol=1e-6,
        nondet_tol=nondet_tol,
        fast_mode=True,
    )


@pytest.mark.parametrize("name", PSEUDO_INVERSES)
def test_A_Adagger_A_equals_A(name, device):
    physics, shape = make(name, device, torch.float64)
    x, _ = random_pair(physics, shape, seed=3)
    Ax = physics.A(x)
    assert torch.linalg.norm(physics.A(physics.A_dagger(Ax)) - Ax) / torch.linalg.norm(Ax) < 1e-5


@pytest.mark.parametrize("name", OPERATORS)
def test_noise_is_added_and_reproducible(name, device):
    """The same seed gives the same noise draw, bit for bit, on every device. y = noise(A x)
    repeats exactly on the CPU; on CUDA only to rounding, since the sparse kernels behind CT
    (cuSPARSE) may sum a row in another order from one call to the next (seen on an H200 in
    float64), as CUDA's atomics do unless torch.use_deterministic_algorithms is set."""
    physics, shape = make(name, device, torch.float64, noise=GaussianNoise(sigma=0.1))
    x, _ = random_pair(physics, shape, seed=4)
    Ax = physics.A(x)
    draws = [physics.noise(Ax, generator=torch.Generator(device).manual_seed(5)) for _ in "12"]
    assert torch.equal(*draws)
    y1 = physics(x, generator=torch.Generator(device).manual_seed(5))
    y2 = physics(x, generator=torch.Generator(device).manual_seed(5))
    if device == "cpu":
        assert torch.equal(y1, y2)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    residual = (y1 - physics.A(x)).std()
    assert 0.08 < float(residual) < 0.12


@pytest.mark.parametrize("name", SEEDED)
def test_the_seed_alone_fixes_a_random_operator(name):
    first, shape = make(name, "cpu", torch.float64, seed=0)
    x, _ = random_pair(first, shape, seed=6)
    torch.rand(1)  # moves the global random state, which must not matter
    same, _ = make(name, "cpu", torch.float64, seed=0)
    other, _ = make(name, "cpu", torch.float64, seed=1)
    assert torch.equal(first.A(x), same.A(x))
    assert not torch.equal(first.A(x), other.A(x))
