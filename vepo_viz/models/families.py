"""What differs between VLM families: names, pixel layouts and how a view is applied.

Every family's processor returns normalised `pixel_values`, but in its own layout:

- "patches": flat patches (N_patches, C * t * P * P) plus `image_grid_thw` (Qwen2-VL,
  Qwen2.5-VL, Qwen3-VL). Every row is real; noise goes on all of them.
- "tiles": (B, tiles, C, H, W) plus `pixel_attention_mask` (Idefics3, SmolVLM,
  LLaVA-OneVision). The model treats an all-zero tile as batch padding and drops it, so
  noise goes on real tiles only, and a zeroed ("no_image") real tile is written as
  TILE_ZERO instead of 0 so that the model still sees it.
- "image": (B, C, H, W) (Gemma 3, LLaVA, PaliGemma).

Unknown families get the layout their pixel_values' rank implies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vepo_viz.lazy import torch
from vepo_viz.perturb import perturb_pixel_values
from vepo_viz.registry import Registry

LAYOUTS = ("patches", "tiles", "image")

DEFAULT_LORA_TARGETS = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)
"""peft target_modules regex: the language model's attention and MLP projections. Vision
towers (Qwen's `visual`, SigLIP's `vision_tower`) stay frozen."""

TILE_ZERO = 1e-6
"""Value of a zeroed real tile in the "tiles" layout: exactly 0 would mark it as padding
(Idefics3 drops all-zero tiles); 1e-6 normalised units is a zero image for the model."""


@dataclass(frozen=True)
class Family:
    """One model family as far as vepo-viz needs to know it."""

    name: str
    """transformers' config.model_type, e.g. "qwen2_5_vl"."""
    label: str
    """Human name, e.g. "Qwen2.5-VL"."""
    layout: str | None
    """One of LAYOUTS; None = infer from the rank of pixel_values."""
    description: str = ""
    """One line for the docs and the About tab (tested or only listed, and with what)."""
    processor: Callable[[], type] | None = None
    """Returns the processor class to load this family with (None: AutoProcessor). Used
    where transformers' own class needs torchvision (`processors.no_video`)."""
    lora_targets: str = DEFAULT_LORA_TARGETS
    """peft `target_modules` regex of this family's language model (training with LoRA)."""

    def layout_of(self, pixel_values: torch.Tensor) -> str:
        """The layout of this family's pixel_values (inferred for unknown families)."""
        if self.layout is not None:
            return self.layout
        return {2: "patches", 4: "image", 5: "tiles"}.get(pixel_values.dim(), "image")

    def real_tiles(self, pixel_values: torch.Tensor) -> torch.Tensor | None:
        """(B, tiles) bool of non-padding tiles for the "tiles" layout, else None (all real)."""
        if self.layout_of(pixel_values) != "tiles":
            return None
        return pixel_values.flatten(2).ne(0).any(-1)  # (B, tiles, C, H, W) -> (B, tiles)

    def view(
        self,
        pixel_values: torch.Tensor,
        mode: str,
        *,
        sigma: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """A normalised-space counterfactual view of `pixel_values` in this family's layout."""
        real = self.real_tiles(pixel_values)  # (B, tiles) or None
        view = perturb_pixel_values(
            pixel_values, mode, sigma=sigma, generator=generator, valid=real
        )
        if real is not None:
            # A real tile that came out all zero would be read as padding: nudge it.
            zeroed = real & ~view.flatten(2).ne(0).any(-1)  # (B, tiles)
            if bool(zeroed.any()):
                view = view.clone()
                view[zeroed] = TILE_ZERO
        return view


def _no_video(model_type: str) -> Callable[[], type]:
    """The processor of `model_type` without its video part (imported when first used)."""

    def load() -> type:
        from vepo_viz.models.processors import no_video

        return no_video(model_type)

    return load


FAMILIES: Registry[Family] = Registry("VLM family")
"""VLM families by transformers' config.model_type. Add one with
`FAMILIES.register(Family(...))` (and a tiny random model of it in the tests)."""

_TESTED = "tested with a tiny random model"
_LISTED = "listed with its layout; same code path, not tested here"
for _family in (
    Family("qwen2_vl", "Qwen2-VL", "patches", _TESTED, _no_video("qwen2_vl")),
    Family("qwen2_5_vl", "Qwen2.5-VL", "patches", _TESTED, _no_video("qwen2_5_vl")),
    Family("qwen3_vl", "Qwen3-VL", "patches", _TESTED, _no_video("qwen3_vl")),
    Family("idefics3", "Idefics3", "tiles", _TESTED),
    Family("smolvlm", "SmolVLM", "tiles", _TESTED, _no_video("smolvlm")),
    Family("llava_onevision", "LLaVA-OneVision", "tiles", _LISTED),
    Family("gemma3", "Gemma 3", "image", _TESTED),
    Family("llava", "LLaVA", "image", _LISTED),
    Family("paligemma", "PaliGemma", "image", _LISTED),
):
    FAMILIES.register(_family)
del _family


def family_of(model_type: str) -> Family:
    """The Family of a config.model_type (a layout-inferring one if unknown)."""
    return FAMILIES.get(model_type) or Family(model_type, model_type, None)


def pixel_limit(image_processor) -> int | None:
    """Most pixels the image processor keeps from an image, read from its size settings.

    Qwen: size["longest_edge"] is a pixel budget (max_pixels); Idefics3/SmolVLM:
    size["longest_edge"] is a side; Gemma 3 / LLaVA: a fixed height x width.
    None when the processor states no limit.
    """
    size = getattr(image_processor, "size", None)

    def get(key: str) -> int | None:
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        return int(value) if value else None

    max_pixels = getattr(image_processor, "max_pixels", None) or get("max_pixels")
    if max_pixels:
        return int(max_pixels)
    if get("longest_edge"):
        edge = get("longest_edge")
        # Qwen stores a pixel budget under "longest_edge" (it has a merge_size).
        return edge if hasattr(image_processor, "merge_size") else edge * edge
    if get("height") and get("width"):
        return get("height") * get("width")
    if get("shortest_edge"):
        return 4 * get("shortest_edge") ** 2
    return None
