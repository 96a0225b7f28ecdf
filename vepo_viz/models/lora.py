"""peft's LoraConfig for a VLM family (peft is imported only under vepo_viz/models/).

The TRL trainer hands this to GRPOTrainer's `peft_config`; the target regex defaults to
the family's language-model projections, so the vision tower stays frozen. A LoRA run's
checkpoints hold only the adapter: `load_model` opens such a folder as its base model with
the adapter merged in (`adapter_base`, `merge_adapter`).
"""

from __future__ import annotations

import json
from pathlib import Path

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


ADAPTER_CONFIG = "adapter_config.json"


def adapter_base(folder: str | Path) -> str | None:
    """The base model a peft adapter folder was trained on (None: not an adapter folder)."""
    path = Path(folder).expanduser() / ADAPTER_CONFIG
    if (path.parent / "config.json").is_file() or not path.is_file():
        return None
    try:
        base = json.loads(path.read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"cannot read {path}: {error}") from error
    if not base:
        raise ModelLoadError(f"{path} does not name its base model (base_model_name_or_path)")
    return str(base)


def merge_adapter(model, folder: str | Path):
    """`model` with the LoRA adapter of `folder` loaded and merged into its weights."""
    try:
        from peft import PeftModel
    except ImportError as error:  # pragma: no cover - peft is a dev/gpu dependency
        raise ModelLoadError(
            f"{folder} holds a LoRA adapter; opening it needs peft (pip install peft)"
        ) from error
    try:
        return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ModelLoadError(f"cannot load the LoRA adapter in {folder}: {error}") from error
