"""vepo_viz.perturb: seeded, fresh, independent counterfactual views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vepo_viz.perturb import (
    MODES,
    NORMALIZED_MODES,
    PIXEL_MODES,
    PerturbConfig,
    image_views,
    make_generator,
    perturb_image,
    perturb_pixel_values,
    pixel_value_views,
)


def clean_pixel_values(shape=(64, 1176)):  # Qwen-style flat patches (N, C*t*P*P)
    return torch.randn(shape, generator=torch.Generator().manual_seed(123))


def test_gaussian_deterministic_by_seed_and_fresh():
    x = clean_pixel_values()
    x_before = x.clone()
    a = perturb_pixel_values(x, "gaussian", generator=make_generator(0, 0))
    b = perturb_pixel_values(x, "gaussian", generator=make_generator(0, 0))
    assert torch.equal(a, b)
    assert torch.equal(x, x_before)  # input untouched
    assert a is not x
    # Noise has the requested std and no clamping.
    noise = a - x
    assert abs(float(noise.std()) - 2.0) < 0.05 and abs(float(noise.mean())) < 0.05
    assert float(a.abs().max()) > float(x.abs().max()) + 3
    # A second draw from the same clean input is fresh, not stacked on the first view.
    second = perturb_pixel_values(x, "gaussian", generator=make_generator(0, 1))
    assert abs(float((second - x).std()) - 2.0) < 0.05


def test_draws_independent_and_seeds_differ():
    x = clean_pixel_values()
    noise = [
        (perturb_pixel_values(x, "gaussian", generator=make_generator(s, k)) - x).flatten()
        for s, k in [(0, 0), (0, 1), (0, 2), (1, 0)]
    ]
    for i in range(len(noise)):
        for j in range(i + 1, len(noise)):
            corr = torch.corrcoef(torch.stack([noise[i], noise[j]]))[0, 1]
            assert abs(float(corr)) < 0.03


def test_sigma_scales_noise_and_dtype_kept():
    x = clean_pixel_values().to(torch.bfloat16)
    a = perturb_pixel_values(x, "gaussian", sigma=0.5, generator=make_generator(3))
    b = perturb_pixel_values(x, "gaussian", sigma=1.0, generator=make_generator(3))
    assert a.dtype == torch.bfloat16 and a.shape == x.shape
    ratio = (b.float() - x.float()).std() / (a.float() - x.float()).std()
    assert abs(float(ratio) - 2.0) < 0.02
    assert torch.equal(
        perturb_pixel_values(x, "gaussian", sigma=0.0, generator=make_generator(3)), x
    )


def test_no_image_zeros():
    x = clean_pixel_values((2, 3, 8, 8))
    view = perturb_pixel_values(x, "no_image")
    assert torch.equal(view, torch.zeros_like(x)) and float(x.abs().sum()) > 0


@pytest.mark.parametrize("mode", NORMALIZED_MODES)
def test_valid_mask_leaves_padding_tiles_untouched(mode):
    x = clean_pixel_values((2, 5, 3, 8, 8))  # (B, tiles, C, H, W)
    valid = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    view = perturb_pixel_values(x, mode, generator=make_generator(0), valid=valid)
    assert torch.equal(view[~valid], x[~valid])
    assert not torch.equal(view[valid], x[valid])
    # The noise on real tiles is the same draw as without a mask.
    full = perturb_pixel_values(x, mode, generator=make_generator(0))
    assert torch.equal(view[valid], full[valid])
    with pytest.raises(ValueError, match="leading dims"):
        perturb_pixel_values(x, mode, generator=make_generator(0), valid=valid[:, :3])


def test_pixel_value_errors():
    x = clean_pixel_values()
    with pytest.raises(ValueError, match="generator"):
        perturb_pixel_values(x, "gaussian")
    with pytest.raises(ValueError, match="perturb_image"):
        perturb_pixel_values(x, "blur", generator=make_generator(0))
    with pytest.raises(ValueError, match="sigma"):
        perturb_pixel_values(x, "gaussian", sigma=-1.0, generator=make_generator(0))


def sample_image(size=(70, 42)):
    rng = np.random.default_rng(0)
    array = rng.integers(30, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(array, "RGB")


@pytest.mark.parametrize("mode", PIXEL_MODES)
def test_pixel_modes_same_size_rgb_and_deterministic(mode):
    image = sample_image().convert("RGBA")
    a = perturb_image(image, mode, sigma=0.3, generator=make_generator(5))
    b = perturb_image(image, mode, sigma=0.3, generator=make_generator(5))
    assert a.mode == "RGB" and a.size == image.size
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(image.convert("RGB")))


def test_black_and_blur():
    image = sample_image()
    assert np.asarray(perturb_image(image, "black")).max() == 0
    blurred = np.asarray(perturb_image(image, "blur", blur_radius=6.0), dtype=np.float32)
    assert blurred.std() < np.asarray(image, dtype=np.float32).std() / 2


def test_gaussian_pixel_clamped():
    image = sample_image()
    noisy = perturb_image(image, "gaussian_pixel", sigma=0.5, generator=make_generator(1))
    values = np.asarray(noisy)
    assert (values == 0).mean() > 0.05 and (values == 255).mean() > 0.05  # clamped, not wrapped


def test_patch_blackens_about_p_of_patches():
    image = Image.new("RGB", (14 * 30, 14 * 20), (200, 100, 50))
    out = np.asarray(
        perturb_image(image, "patch", generator=make_generator(2), patch_size=14, patch_prob=0.5)
    )
    cells = out.reshape(20, 14, 30, 14, 3).transpose(0, 2, 1, 3, 4).reshape(600, -1)
    black = (cells == 0).all(axis=1)
    untouched = (cells == out.max()).sum(axis=1) > 0
    assert np.all(black | untouched)  # whole patches, nothing in between
    assert 0.4 < black.mean() < 0.6
    all_black = perturb_image(image, "patch", generator=make_generator(2), patch_prob=1.0)
    assert np.asarray(all_black).max() == 0
    # Images whose size is not a multiple of patch_size: edge cells count too.
    odd = perturb_image(
        sample_image((31, 17)), "patch", generator=make_generator(0), patch_prob=1.0
    )
    assert odd.size == (31, 17) and np.asarray(odd).max() == 0


def test_perturb_config():
    config = PerturbConfig()
    assert (config.mode, config.sigma, config.n_draws, config.space) == (
        "gaussian",
        2.0,
        1,
        "normalized",
    )
    assert PerturbConfig(mode="patch").space == "pixel"
    assert set(MODES) == set(NORMALIZED_MODES) | set(PIXEL_MODES)
    for bad in (
        {"mode": "noise"},
        {"sigma": -1},
        {"n_draws": 0},
        {"seed": -2},
        {"patch_size": 0},
        {"patch_prob": 1.5},
        {"blur_radius": -1},
    ):
        with pytest.raises(ValueError, match="PerturbConfig"):
            PerturbConfig(**bad)


def test_views_helpers():
    x = clean_pixel_values()
    views = pixel_value_views(x, PerturbConfig(n_draws=3, seed=7))
    assert len(views) == 3 and not torch.equal(views[0], views[1])
    assert torch.equal(
        views[2], perturb_pixel_values(x, "gaussian", generator=make_generator(7, 2))
    )
    images = image_views(sample_image(), PerturbConfig(mode="patch", n_draws=2))
    assert len(images) == 2 and images[0].size == (70, 42)
    with pytest.raises(ValueError, match="image_views"):
        pixel_value_views(x, PerturbConfig(mode="black"))


def test_make_generator_validates():
    assert make_generator(1, 2).initial_seed() == 1 * 1_000_003 + 2
    with pytest.raises(ValueError, match="seed"):
        make_generator(-1)
