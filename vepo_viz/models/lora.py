"""peft's LoraConfig for a VLM family (peft is imported only under vepo_viz/models/).

The TRL trainer hands this to GRPOTrainer's `peft_config`; the target regex defaults to
the family's language-model projections, so the vision tower stays frozen.
"""

from __future__ import annotations

from vepo_viz.errors import ModelLoadError
from vepo_viz.models.families import DEFAULT_LORA_TARGETS


def lora_config(r: int, alpha: float, dropout: float, targets: str = "", family=None):
    """A peft `LoraConfig`: rank r, scale alpha / r, `targets` regex (or the family's)."""
    try:
        from peft import LoraConfig
    except ImportError as error:  # pragma: no cover - peft is a dev/gpu dependency
        raise ModelLoadError(
            "LoRA needs peft: pip install 'vepo-viz[gpu]' (or set finetune = \"full\")"
        ) from error
    default = family.lora_targets if family is not None else DEFAULT_LORA_TARGETS
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets or default,
        bias="none",
    )
