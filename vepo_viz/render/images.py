"""The clean image beside its counterfactual view, for display, read off a result.

`analyze` stores both on the `TokenAnalysis` (the image as the processor received it,
and draw 0's preview: perturb.counterfactual_preview), so showing them needs neither the
model nor the perturbation code: nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

NO_IMAGE = "The image is not stored with this analysis."
NO_PREVIEW = "no counterfactual preview is stored with this analysis"


def views_of(result: TokenAnalysis) -> tuple[Image.Image | None, Image.Image | None, str]:
    """(clean image, counterfactual preview, caption) of a result; None where not stored."""
    clean = result.image
    if clean is None:
        return None, None, NO_IMAGE
    view = result.counterfactual_image
    caption = result.counterfactual_caption if view is not None else NO_PREVIEW
    return (
        clean,
        view,
        f"Left: the clean image the model saw ({clean.width}x{clean.height}). Right: {caption}.",
    )


def processed_size(image: Image.Image, analysis: TokenAnalysis) -> Image.Image:
    """`image` at the size the processor received (analysis.image_size), RGB: for results
    that do not store their image (`analysis.image` is that image when they do)."""
    rgb = image.convert("RGB")
    size = analysis.image_size  # (0, 0): not known
    if size[0] > 0 and size[1] > 0 and rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return rgb


def grid_caption(result: TokenAnalysis) -> str:
    """What the model really saw, from the processor's patch grid where the result knows
    it ("The model saw 112x112 px as an 8x8 patch grid of 14 px patches."), else ""."""
    grid, size = result.patch_grid, result.patch_size
    if not grid or size <= 0:
        return ""
    cols, rows = grid
    article = "an" if str(cols).startswith("8") or cols in (11, 18) else "a"
    return (
        f"The model saw {cols * size}x{rows * size} px as {article} {cols}x{rows} patch grid "
        f"of {size} px patches."
    )
