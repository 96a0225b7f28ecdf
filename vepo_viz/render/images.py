"""The counterfactual image beside the clean one, for display.

Pixel-space modes (gaussian_pixel, black, blur, patch) are previewed exactly: the same
`perturb_image` call with the same generator as draw 0 of the analysis, on the image at
the size the processor received. Normalised-space modes act on the processor's
pixel_values, which are not an image; their preview is a faithful rendering in pixel
space: "gaussian" adds sigma * std_c of noise to channel c (x_norm = (x - mean_c) / std_c,
so N(0, sigma^2) in normalised units is N(0, (sigma std_c)^2) in [0, 1] units), clamped to
[0, 1] for display; "no_image" (pixel_values = 0) is the flat image of the channel means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from vepo_viz.perturb import PIXEL_MODES, PerturbConfig, make_generator, perturb_image

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
"""OpenAI CLIP normalisation (Qwen2-VL / Qwen2.5-VL use it): the fallback when the
processor's own image_mean / image_std are not given."""


def perturb_config_of(analysis: Any) -> PerturbConfig:
    """The PerturbConfig an analysis was made with (its settings["perturb"])."""
    raw = (getattr(analysis, "settings", None) or {}).get("perturb", {}) or {}
    if isinstance(raw, PerturbConfig):
        return raw
    known = set(PerturbConfig.__dataclass_fields__)
    return PerturbConfig(**{k: v for k, v in raw.items() if k in known})


def processed_size(image: Image.Image, analysis: Any) -> Image.Image:
    """`image` at the size the processor received (analysis.image_size), RGB."""
    rgb = image.convert("RGB")
    size = tuple(getattr(analysis, "image_size", (0, 0)) or (0, 0))
    if size[0] > 0 and size[1] > 0 and rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return rgb


def counterfactual_preview(
    image: Image.Image,
    config: PerturbConfig,
    *,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> tuple[Image.Image, str]:
    """(preview image, caption) of draw 0 of `config` applied to `image`."""
    rgb = image.convert("RGB")
    if config.mode in PIXEL_MODES:
        view = perturb_image(
            rgb,
            config.mode,
            sigma=config.sigma,
            generator=config.generator(0),
            patch_size=config.patch_size,
            patch_prob=config.patch_prob,
            blur_radius=config.blur_radius,
        )
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
    import torch

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
