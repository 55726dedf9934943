"""zoo.samplers: schedules, the Euler loop on known velocity fields, CFG and APG."""

import pytest
import torch

from zoo.samplers import Guidance, apg, cfg, euler, linspace_timesteps, uniform_timesteps


# -- schedules -------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 2, 3, 7, 20, 50])
def test_schedules_run_from_noise_to_data_monotonically(steps):
    u, lin = uniform_timesteps(steps), linspace_timesteps(steps)
    assert len(u) == steps + 1 and lin.shape == (steps + 1,) and lin.dtype == torch.float32
    assert u[0] == 1.0 and u[-1] == 0.0 and float(lin[0]) == 1.0 and float(lin[-1]) == 0.0
    assert all(a > b for a, b in zip(u, u[1:])) and bool((lin[:-1] > lin[1:]).all())
    assert u == [i / steps for i in range(steps, -1, -1)]  # each point correctly rounded
    torch.testing.assert_close(lin, torch.tensor(u, dtype=torch.float32), atol=1e-7, rtol=0)


@pytest.mark.parametrize("steps", [0, -1, 2.0, True])
def test_schedules_refuse_bad_steps(steps):
    with pytest.raises(ValueError, match="positive integer"):
        uniform_timesteps(steps)
    with pytest.raises(ValueError, match="positive integer"):
        linspace_timesteps(steps)


# -- the Euler loop --------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [4, 7, linspace_timesteps(4), linspace_timesteps(7)])
def test_euler_integrates_a_constant_velocity_exactly(grid):
    """dx/dt = c from t = 1 to 0: x(0) = x(1) - c, whatever the step count (exact in binary for these values)."""
    x1, c = torch.tensor([[0.5, -2.0, 3.0]]), torch.tensor([[1.0, 0.25, -4.0]])
    out = euler(lambda x, t: c, x1, grid)
    torch.testing.assert_close(out, x1 - c, atol=1e-6, rtol=0)


@pytest.mark.parametrize("grid", [5, linspace_timesteps(5)])
def test_euler_integrates_a_field_linear_in_t_as_a_left_riemann_sum(grid):
    """v = a t: the exact integral from 1 to 0 is -a / 2; Euler takes t at the left (upper) end of each
    step, so with N steps x(0) = x(1) - a (N + 1) / (2 N)."""
    a, n = torch.tensor([2.0, -3.0]), 5
    out = euler(lambda x, t: a * float(t), torch.zeros(2), grid)
    torch.testing.assert_close(out, -a * (n + 1) / (2 * n), atol=1e-6, rtol=0)


def test_euler_on_the_rectified_flow_of_a_point_lands_on_it():
    """Data a single point x0: the true velocity v(x, t) = (x - x0) / t is followed exactly by Euler."""
    x0, noise = torch.tensor([[0.3, -1.2]]), torch.tensor([[1.5, 0.7]])
    out = euler(lambda x, t: (x - x0) / float(t), noise, 8)
    torch.testing.assert_close(out, x0, atol=1e-6, rtol=0)


def test_euler_hands_the_grid_points_to_the_model():
    seen = []
    euler(lambda x, t: seen.append(t) or torch.zeros_like(x), torch.zeros(1), 4)
    assert seen == [1.0, 0.75, 0.5, 0.25]
    seen.clear()
    euler(lambda x, t: seen.append(t) or torch.zeros_like(x), torch.zeros(1), linspace_timesteps(4))
    assert all(isinstance(t, torch.Tensor) and t.dim() == 0 for t in seen) and [float(t) for t in seen] == [1.0, 0.75, 0.5, 0.25]


# -- guidance --------------------------------------------------------------------------------------
def _pair(x, t):
    """A conditional and an unconditional field that differ: (v_cond, v_uncond)."""
    return x * 0.5 + 1.0, x * -0.25 + float(t)


def test_guidance_scale_one_is_the_conditional_path():
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    cond_only = euler(lambda x, t: _pair(x, t)[0], x, 6)
    # v_u + 1 * (v_c - v_u) rounds to v_c within an ulp; APG adds 0 * (orthogonal part): exactly v_c
    torch.testing.assert_close(euler(_pair, x, 6, Guidance(1.0)), cond_only, atol=1e-6, rtol=0)
    assert torch.equal(euler(_pair, x, 6, Guidance(1.0, apg=True)), cond_only)


def test_cfg_is_the_linear_extrapolation_and_scale_may_depend_on_t():
    vc, vu = torch.randn(2, 5), torch.randn(2, 5)
    torch.testing.assert_close(cfg(vc, vu, 1.0), vc, atol=1e-6, rtol=0)
    assert torch.equal(cfg(vc, vu, 0.0), vu)
    torch.testing.assert_close(cfg(vc, vu, 3.0), 3 * vc - 2 * vu)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(euler(_pair, x, 4, Guidance(lambda t: 2.5)), euler(_pair, x, 4, Guidance(2.5)))
    scales = []
    euler(_pair, x, 4, Guidance(lambda t: scales.append(t) or 2.0))
    assert scales == [1.0, 0.75, 0.5, 0.25]


def test_apg_matches_definition():
    torch.manual_seed(0)
    vc, diff = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3) * 3
    out = apg(vc, diff, 5.0)
    clipped = diff * torch.clamp(2.5 / diff.flatten(1).norm(dim=1), max=1)[:, None, None, None]
    u = vc.flatten(1) / vc.flatten(1).norm(dim=1, keepdim=True)
    orth = clipped.flatten(1) - (clipped.flatten(1) * u).sum(1, keepdim=True) * u
    assert torch.allclose(out, vc + 4.0 * orth.view_as(vc), atol=1e-5)


def test_apg_in_the_loop_keeps_a_momentum_average():
    """Reference loop written out: running = d + momentum * running, then apg(v_c, running, s)."""
    x0 = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    g = Guidance(4.0, apg=True, momentum=-0.5, norm_threshold=1.0)
    x, running = x0.clone(), torch.zeros_like(x0)
    for i in range(3, 0, -1):
        v_c, v_u = _pair(x, i / 3)
        running = (v_c - v_u) - 0.5 * running
        x = x - apg(v_c, running, 4.0, 1.0) / 3
    assert torch.equal(euler(_pair, x0, 3, g), x)
    assert not torch.allclose(euler(_pair, x0, 3, Guidance(4.0)), x)  # APG is not plain CFG
