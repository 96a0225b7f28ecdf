"""Counterfactual image views for the second (perturbed-image) forward pass.

Two families of modes (shared/PAPER.md, step 2):

- normalised space, applied to a processor's `pixel_values` (any layout: Qwen's flat
  patches (N, C*t*P*P), (B, C, H, W), (B, tiles, C, H, W)):
  "gaussian" adds N(0, sigma^2) noise (sigma = 2.0, no clamping: the reference) and
  "no_image" sets the values to zero;
- pixel space, applied to a PIL image before the processor:
  "gaussian_pixel" (noise in [0, 1] units, clamped), "black", "blur" and "patch" (each
  patch_size px grid cell blackened with probability patch_prob, as VPPO).

Everything is pure and seeded by an explicit torch.Generator. Every view is computed from
the clean input, never from an earlier view: the reference's training loop stacked the
noise of all rollouts sharing an image (effective sigma ~ 2 sqrt(n)); here each draw is
fresh. `make_generator(seed, draw)` gives K independent, reproducible draws.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from vepo_viz.errors import VepoInputError
from vepo_viz.lazy import torch
from vepo_viz.registry import Registry
from vepo_viz.settings import LegacyMapping

DEFAULT_SIGMA = 2.0
"""Reference noise std in normalised units. In [0, 1] pixel units ("gaussian_pixel") the
same strength is about 2.0 * 0.27 ~ 0.55, since CLIP-style processors divide by std ~0.27."""

DEFAULT_PATCH_SIZE = 14
"""Patch side in pixels of "patch" (Qwen2.5-VL's ViT patch, as VPPO)."""
DEFAULT_PATCH_PROB = 0.5
"""Probability that a patch is blackened in "patch"."""
DEFAULT_BLUR_RADIUS = 6.0
"""Gaussian blur radius in pixels of "blur"."""

DRAW_STRIDE = 1_000_003
"""Generator seed of draw k is seed * DRAW_STRIDE + k (a prime, so seeds never collide
for draws < DRAW_STRIDE)."""

MAX_SEED = 2**44 - 1
"""Largest seed of any setting (17,592,186,044,415): the generator seed of the last draw,
seed * DRAW_STRIDE + (DRAW_STRIDE - 1), must fit the 64 bits torch seeds have."""


def make_generator(seed: int, draw: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """An independent, reproducible generator for draw `draw` of a config's `seed`."""
    for name, value in (("seed", seed), ("draw", draw)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if draw >= DRAW_STRIDE:
        raise ValueError(f"draw must be < {DRAW_STRIDE}, got {draw}")
    if seed > MAX_SEED:
        raise VepoInputError(f"seed must lie in [0, {MAX_SEED:,}] (MAX_SEED), got {seed}")
    return torch.Generator(device=device).manual_seed(seed * DRAW_STRIDE + draw)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    return sigma


def _need_generator(generator: torch.Generator | None, mode: str) -> torch.Generator:
    if generator is None:
        raise ValueError(
            f"mode {mode!r} is random: pass generator=make_generator(seed, draw) "
            "(library code never uses the global RNG)"
        )
    return generator


@dataclass(frozen=True)
class CounterfactualMode:
    """One entry of MODES: how a counterfactual view is made from the clean input."""

    name: str
    """What `PerturbConfig.mode` takes ("gaussian", "blur", ...)."""
    description: str
    """One line for the UI's choices, the CLI's help and the docs."""
    space: str
    """"normalized": `apply` maps processor pixel_values (any layout) to a tensor of the
    same shape; "pixel": `apply` maps an RGB PIL image to one of the same size."""
    apply: Callable[[Any, Any, torch.Generator | None], Any]
    """(clean input, params, generator) -> view. `params` has the PerturbConfig fields
    named in `parameters` as attributes; `generator` is None only for non-random modes."""
    random: bool = False
    """True when the view depends on the generator (n_draws > 1 then gives new views)."""
    parameters: tuple[str, ...] = ()
    """The PerturbConfig fields this mode reads (the UI shows only these)."""
    kind: str = "pixel"
    """What the view changes (VIEW_KINDS): "pixel", the image inputs. The engine
    (models/engine.py) runs every view of a kind in one batched teacher-forced pass."""

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"CounterfactualMode.space={self.space!r}; choose one of {SPACES}")
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"CounterfactualMode.kind={self.kind!r}; choose one of {VIEW_KINDS}")


SPACES: tuple[str, ...] = ("normalized", "pixel")

VIEW_KINDS: tuple[str, ...] = ("pixel",)
"""View kinds the engine runs. The seed rule is the same for every kind: draw k of an
analysis takes `make_generator(seed, k)`; row b of TRL generation step s takes
`view_seed(seed, s, b)` (train.trl_plugin), so no two rows share a noise tensor."""


def _gaussian(pixel_values: torch.Tensor, params, gen: torch.Generator) -> torch.Tensor:
    sigma = _check_sigma(params.sigma)
    # Noise is drawn in float32 on the generator's device, so a draw is the same whatever
    # the input's dtype or device.
    noise = torch.randn(pixel_values.shape, generator=gen, device=gen.device, dtype=torch.float32)
    noise = noise.to(pixel_values.device).mul_(sigma)  # in place: the same bits as sigma * noise
    return noise.add_(pixel_values).to(pixel_values.dtype)  # pixel_values + sigma * noise


def _gaussian_pixel(rgb: Image.Image, params, gen: torch.Generator) -> Image.Image:
    sigma = _check_sigma(params.sigma)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    noise = torch.randn((rgb.height, rgb.width, 3), generator=gen, device=gen.device)  # (H, W, 3)
    pixels = np.clip(pixels + sigma * noise.cpu().numpy(), 0.0, 1.0)
    return Image.fromarray(np.round(pixels * 255.0).astype(np.uint8), mode="RGB")


def _blur(rgb: Image.Image, params, gen: torch.Generator | None) -> Image.Image:
    if not (params.blur_radius >= 0):
        raise ValueError(f"blur_radius must be >= 0, got {params.blur_radius}")
    return rgb.filter(ImageFilter.GaussianBlur(radius=params.blur_radius))


def _patch(rgb: Image.Image, params, gen: torch.Generator) -> Image.Image:
    patch_size, patch_prob = params.patch_size, params.patch_prob
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be an int >= 1, got {patch_size!r}")
    if not (0.0 <= patch_prob <= 1.0):
        raise ValueError(f"patch_prob must lie in [0, 1], got {patch_prob}")
    width, height = rgb.size
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    n_rows, n_cols = math.ceil(height / patch_size), math.ceil(width / patch_size)
    drop = torch.rand((n_rows, n_cols), generator=gen, device=gen.device) < patch_prob
    drop_np = drop.cpu().numpy()
    keep = ~np.repeat(np.repeat(drop_np, patch_size, axis=0), patch_size, axis=1)
    pixels = pixels * keep[:height, :width, None]  # (H, W, 3)
    return Image.fromarray(np.round(pixels * 255.0).astype(np.uint8), mode="RGB")


MODES: Registry[CounterfactualMode] = Registry("counterfactual mode", reference="gaussian")
"""The views registry: every counterfactual view (perturbation mode), in the order the UI
lists them; "gaussian" is the VEPO reference. Add one with
`MODES.register(CounterfactualMode(...))`: analyze, batch and the TRL plug-in take it."""

for _mode in (
    CounterfactualMode(
        "gaussian",
        "VEPO (reference): N(0, sigma^2) on the normalised pixel_values, unclamped",
        "normalized",
        _gaussian,
        random=True,
        parameters=("sigma",),
    ),
    CounterfactualMode(
        "no_image",
        "pixel_values set to 0 (every pixel at the channel mean)",
        "normalized",
        lambda pixel_values, params, gen: torch.zeros_like(pixel_values),
    ),
    CounterfactualMode(
        "gaussian_pixel",
        "N(0, sigma^2) in [0, 1] pixel units, clamped",
        "pixel",
        _gaussian_pixel,
        random=True,
        parameters=("sigma",),
    ),
    CounterfactualMode(
        "black",
        "an all-black image",
        "pixel",
        lambda rgb, params, gen: Image.new("RGB", rgb.size, (0, 0, 0)),
    ),
    CounterfactualMode("blur", "Gaussian blur", "pixel", _blur, parameters=("blur_radius",)),
    CounterfactualMode(
        "patch",
        "grid cells blackened at random (VPPO)",
        "pixel",
        _patch,
        random=True,
        parameters=("patch_size", "patch_prob"),
    ),
):
    MODES.register(_mode)
del _mode

NORMALIZED_MODES = MODES.view(lambda m: m.space == "normalized")
"""Modes applied to processor-normalised pixel_values (`perturb_pixel_values`)."""

PIXEL_MODES = MODES.view(lambda m: m.space == "pixel")
"""Modes applied to the PIL image before the processor (`perturb_image`)."""

RANDOM_MODES = MODES.view(lambda m: m.random)
"""Modes whose views depend on the generator (the others ignore it)."""


def perturb_pixel_values(
    pixel_values: torch.Tensor,
    mode: str,
    *,
    sigma: float = DEFAULT_SIGMA,
    generator: torch.Generator | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """A counterfactual view of processor-normalised pixel values (a new tensor).

    Args:
        pixel_values: normalised pixels in any layout, e.g. (N, C*t*P*P) flat patches,
            (B, C, H, W) or (B, tiles, C, H, W). Not modified.
        mode: a normalised-space mode: "gaussian" (add N(0, sigma^2), no clamping) or
            "no_image" (zeros), or one registered later.
        sigma: noise std in normalised units (2.0 in the reference).
        generator: required for random modes; one generator per draw (`make_generator`).
        valid: optional bool mask over the leading dims (shape pixel_values.shape[:k]),
            True on real tiles/images; False entries (padding tiles) are returned unchanged.

    Returns:
        Tensor of pixel_values' shape, dtype and device.
    """
    return _pixel_values_view(pixel_values, mode, SimpleNamespace(sigma=sigma), generator, valid)


def _pixel_values_view(pixel_values, mode: str, params, generator, valid) -> torch.Tensor:
    if mode not in NORMALIZED_MODES:
        hint = " (a pixel-space mode: use perturb_image)" if mode in PIXEL_MODES else ""
        raise ValueError(
            f"unknown normalised-space mode {mode!r}{hint}; choose {tuple(NORMALIZED_MODES)}"
        )
    if not pixel_values.is_floating_point():
        raise TypeError(f"pixel_values must be a float tensor, got {pixel_values.dtype}")
    entry = MODES[mode]
    gen = _need_generator(generator, mode) if entry.random else generator
    view = entry.apply(pixel_values, params, gen)

    if valid is not None:
        valid = valid.to(device=pixel_values.device, dtype=torch.bool)
        k = valid.dim()
        if k > pixel_values.dim() or tuple(valid.shape) != tuple(pixel_values.shape[:k]):
            raise ValueError(
                f"valid must cover the leading dims of pixel_values {tuple(pixel_values.shape)}, "
                f"got shape {tuple(valid.shape)}"
            )
        valid = valid.reshape(valid.shape + (1,) * (pixel_values.dim() - k))
        view = torch.where(valid, view, pixel_values)
    return view


def perturb_image(
    image: Image.Image,
    mode: str,
    *,
    sigma: float = DEFAULT_SIGMA,
    generator: torch.Generator | None = None,
    patch_size: int = DEFAULT_PATCH_SIZE,
    patch_prob: float = DEFAULT_PATCH_PROB,
    blur_radius: float = DEFAULT_BLUR_RADIUS,
) -> Image.Image:
    """A counterfactual view of a PIL image, as a new RGB image of the same size.

    Built-in modes: "gaussian_pixel" (add N(0, sigma^2) in [0, 1] units, clamp, round),
    "black", "blur" (Gaussian blur of `blur_radius` px) and "patch" (the patch_size x
    patch_size grid cells, edge cells included, each blackened with probability
    patch_prob). `generator` is required for random modes ("gaussian_pixel", "patch").
    """
    params = SimpleNamespace(
        sigma=sigma, patch_size=patch_size, patch_prob=patch_prob, blur_radius=blur_radius
    )
    return _image_view(image, mode, params, generator)


def _image_view(image: Image.Image, mode: str, params, generator) -> Image.Image:
    if mode not in PIXEL_MODES:
        hint = " (a normalised-space mode: use perturb_pixel_values)" if mode in MODES else ""
        raise ValueError(f"unknown pixel-space mode {mode!r}{hint}; choose {tuple(PIXEL_MODES)}")
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image, got {type(image).__name__}")
    entry = MODES[mode]
    gen = _need_generator(generator, mode) if entry.random else generator
    return entry.apply(image.convert("RGB"), params, gen)


@dataclass(frozen=True)
class PerturbConfig(LegacyMapping):
    """How counterfactual views are made; the defaults are the VEPO reference.

    `config["sigma"]` reads a field too (LegacyMapping: the legacy dict view)."""

    mode: str = field(default=MODES.reference, metadata={"registry": MODES})
    """How the counterfactual view is made, on the processor's normalised pixel_values
    or on the image before the processor, as each mode says."""
    sigma: float = DEFAULT_SIGMA
    """Noise std: normalised units for "gaussian" (2.0, reference), [0, 1] units for
    "gaussian_pixel" (there ~0.55 matches the reference's strength)."""
    n_draws: int = 1
    """K independent views whose statistics are averaged (1 in the reference)."""
    seed: int = 0
    """Seed of the counterfactual views; draw k has a generator of its own from (seed, k)."""
    patch_size: int = DEFAULT_PATCH_SIZE
    """Patch side in pixels for "patch" (14 = Qwen2.5-VL's ViT patch, as VPPO)."""
    patch_prob: float = DEFAULT_PATCH_PROB
    """Probability that a patch is blackened in "patch"."""
    blur_radius: float = DEFAULT_BLUR_RADIUS
    """Gaussian blur radius in pixels for "blur"."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise VepoInputError(f"PerturbConfig.mode: {MODES.unknown_message(self.mode)}")
        if not _is_number(self.sigma) or not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise VepoInputError(f"PerturbConfig.sigma={self.sigma} must be finite and >= 0")
        if isinstance(self.n_draws, bool) or not isinstance(self.n_draws, int):
            raise VepoInputError(f"PerturbConfig.n_draws={self.n_draws!r} must be an int >= 1")
        if not (1 <= self.n_draws < DRAW_STRIDE):
            raise VepoInputError(
                f"PerturbConfig.n_draws={self.n_draws} must be >= 1 (1 = reference)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise VepoInputError(f"PerturbConfig.seed={self.seed!r} must be an int >= 0")
        if not 0 <= self.seed <= MAX_SEED:
            raise VepoInputError(
                f"PerturbConfig.seed={self.seed} must lie in [0, {MAX_SEED:,}] (MAX_SEED)"
            )
        if (
            isinstance(self.patch_size, bool)
            or not isinstance(self.patch_size, int)
            or self.patch_size < 1
        ):
            raise VepoInputError(
                f"PerturbConfig.patch_size={self.patch_size!r} must be an int >= 1"
            )
        if not _is_number(self.patch_prob) or not (0.0 <= self.patch_prob <= 1.0):
            raise VepoInputError(f"PerturbConfig.patch_prob={self.patch_prob} must lie in [0, 1]")
        if not _is_number(self.blur_radius) or not (
            math.isfinite(self.blur_radius) and self.blur_radius >= 0
        ):
            raise VepoInputError(f"PerturbConfig.blur_radius={self.blur_radius} must be >= 0")

    @property
    def space(self) -> str:
        """ "normalized" (acts on pixel_values) or "pixel" (acts on the PIL image)."""
        return MODES[self.mode].space

    @property
    def is_random(self) -> bool:
        """False for deterministic modes, where n_draws > 1 repeats the same view."""
        return MODES[self.mode].random

    def generator(self, draw: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
        """The generator of draw `draw` (0 <= draw < n_draws)."""
        return make_generator(self.seed, draw, device)


def pixel_value_view(
    pixel_values: torch.Tensor, config: PerturbConfig, draw: int, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """View `draw` of the config applied to normalised pixel_values (fresh from the input)."""
    if config.space != "normalized":
        raise ValueError(f"mode {config.mode!r} acts on images: use image_views")
    return _pixel_values_view(pixel_values, config.mode, config, config.generator(draw), valid)


def image_view(image: Image.Image, config: PerturbConfig, draw: int) -> Image.Image:
    """View `draw` of the config applied to a PIL image (fresh from the input)."""
    if config.space != "pixel":
        raise ValueError(f"mode {config.mode!r} acts on pixel_values: use pixel_value_views")
    return _image_view(image, config.mode, config, config.generator(draw))


def pixel_value_views(
    pixel_values: torch.Tensor, config: PerturbConfig, valid: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """The config's n_draws views of normalised pixel_values, each fresh from the input."""
    return [pixel_value_view(pixel_values, config, k, valid) for k in range(config.n_draws)]


def image_views(image: Image.Image, config: PerturbConfig) -> list[Image.Image]:
    """The config's n_draws views of a PIL image, each fresh from the input."""
    return [image_view(image, config, k) for k in range(config.n_draws)]


# ---- the preview shown beside the clean image --------------------------------------

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
"""OpenAI CLIP normalisation (Qwen2-VL / Qwen2.5-VL use it): the fallback when the
processor's own image_mean / image_std are not known."""


def counterfactual_preview(
    image: Image.Image,
    config: PerturbConfig,
    *,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> tuple[Image.Image, str]:
    """(preview image, caption) of draw 0 of `config` applied to `image` (for display).

    Pixel-space modes are previewed exactly: the same view as draw 0 of the analysis, on
    the image the processor received. Normalised-space modes act on pixel_values, which
    are not an image; their preview is a faithful rendering in pixel space: "gaussian"
    adds sigma * std_c of noise to channel c (x_norm = (x - mean_c) / std_c, so
    N(0, sigma^2) in normalised units is N(0, (sigma std_c)^2) in [0, 1] units), clamped
    to [0, 1]; "no_image" (pixel_values = 0) is the flat image of the channel means.
    """
    rgb = image.convert("RGB")
    if config.mode in PIXEL_MODES:
        view = image_view(rgb, config, 0)
        caption = f"exact view used (draw 1 of {config.n_draws}): {config.mode}"
        if config.mode == "gaussian_pixel":
            caption += f", sigma={config.sigma:g} in [0, 1] units"
        return view, caption
    mean = np.asarray(image_mean if image_mean is not None else CLIP_MEAN, dtype=np.float32)
    std = np.asarray(image_std if image_std is not None else CLIP_STD, dtype=np.float32)
    if config.mode == "no_image":
        flat = np.broadcast_to(mean, (rgb.height, rgb.width, 3))
        view = Image.fromarray(np.round(np.clip(flat, 0, 1) * 255).astype(np.uint8), mode="RGB")
        return view, "no_image: pixel_values set to 0, i.e. every pixel at the channel mean"
    # "gaussian": noise in normalised space, shown in pixel space.
    gen = make_generator(config.seed, 0)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    noise = torch.randn((rgb.height, rgb.width, 3), generator=gen).numpy()  # (H, W, 3)
    noisy = np.clip(pixels + config.sigma * std * noise, 0.0, 1.0)
    view = Image.fromarray(np.round(noisy * 255).astype(np.uint8), mode="RGB")
    caption = (
        f"gaussian, sigma={config.sigma:g} in normalised units (x std "
        f"{', '.join(f'{float(x):.3f}' for x in std)} per channel in pixel units): a preview "
        "of the same noise strength, clamped to [0, 1] for display; the model saw unclamped "
        "noise on its normalised pixel_values"
    )
    return view, caption
