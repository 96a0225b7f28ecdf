"""`load_model`: a hub id or a local folder -> a `VLM`, offline whenever the files are local.

Resolution: an existing folder loads from disk only. A hub id loads from the Hugging Face
cache when it is there; otherwise it is downloaded, unless offline mode is on or the hub
cannot be reached, which gives a clear "not found locally, no network" error within a
few seconds (transformers alone would retry for ~30 s). Loaded models are kept in a
read-only cache keyed by (source, device, dtype), bounded by count and memory
(`vepo_viz.models.cache`; `configure_cache(CacheSettings(...))` sets its size).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from vepo_viz.errors import ModelLoadError
from vepo_viz.models.adapter import VLM
from vepo_viz.models.cache import CacheSettings, ModelCache

CACHE = ModelCache()
"""The shared models of `load_model(cache=True)` (least recently used out first)."""


def configure_cache(settings: CacheSettings) -> None:
    """Bound the shared model cache (evicts at once what no longer fits)."""
    CACHE.configure(settings)


NETWORK_PROBE_TIMEOUT_S = 3.0
"""Seconds to wait for a TCP connection to the hub before declaring 'no network'."""

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> cuda, else mps, else cpu; anything else is checked to exist."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ModelLoadError(
            f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available here")
    if resolved.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ModelLoadError(f"device {device!r} requested but MPS is not available here")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None -> bfloat16 on CUDA (float16 without bf16 support), float32 on CPU and MPS."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ModelLoadError(
                f"dtype {dtype} is not supported: use float32, bfloat16 or float16"
            )
        return dtype
    if str(dtype) not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16")
    return _DTYPES[str(dtype)]


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    *,
    cache: bool = True,
) -> VLM:
    """Load a vision-language model and its processor as a `VLM`.

    Args:
        name_or_path: a hub id ("Qwen/Qwen2.5-VL-3B-Instruct") or a folder saved by
            `save_pretrained`; None = the embedded tiny model (models.EMBEDDED_MODEL).
        device: "auto" (cuda, then mps, then cpu), or a torch device string.
        dtype: None = bfloat16 on CUDA, float32 elsewhere; or "float32"/"bfloat16"/"float16".
        cache: True returns the shared instance for (source, device, dtype), loaded once
            while it stays in the bounded cache (`configure_cache`); treat it as
            read-only. False loads a private copy (e.g. to train it).

    Raises:
        ModelLoadError: not found locally and no network, not a vision-language model,
            an unusable folder, an unavailable device.
    """
    if name_or_path is None:
        from vepo_viz import models

        name_or_path = models.EMBEDDED_MODEL
        if not (Path(name_or_path) / "config.json").is_file():
            raise ModelLoadError(
                f"the embedded tiny model is not built (no model at {name_or_path}); pass a "
                "model id or folder, or build it with the tiny-train command"
            )
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    base, adapter = _adapter_of(str(name_or_path))  # a LoRA checkpoint: base + adapter
    source, local_only = _locate(base or str(name_or_path))
    args = (source, str(name_or_path), local_only, resolved_device, resolved_dtype, adapter)
    if not cache:
        return _load(*args)
    key = (adapter or source, str(resolved_device), str(resolved_dtype))
    return CACHE.get_or_load(key, lambda: _load(*args))


def _adapter_of(name: str) -> tuple[str | None, str | None]:
    """(base model, adapter folder) when `name` is a folder holding only a LoRA adapter,
    else (None, None)."""
    from vepo_viz.models.lora import adapter_base

    folder = Path(name).expanduser()
    base = adapter_base(folder) if folder.is_dir() else None
    return (None, None) if base is None else (base, str(folder.resolve()))


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~"))
        or os.sep in name.strip("/").replace("/", "", 1)
        or (name.count("/") > 1)
    )


def _locate(name: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether to stay offline)."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelLoadError(
                f"{folder} is a folder but holds no config.json: not a model folder"
            )
        return str(folder.resolve()), True
    if folder.exists() or _looks_like_path(name):
        raise ModelLoadError(f"no model folder at {name} (it does not exist or is not a folder)")
    if _in_hub_cache(name):
        return name, True
    from huggingface_hub import constants

    where = f"not a folder, and not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(
            f"model {name!r} was not found locally ({where}), and offline mode is on "
            "(HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE), so it cannot be downloaded. Pass a local "
            "folder, or download it once with network access."
        )
    if not _hub_reachable(constants.ENDPOINT):
        raise ModelLoadError(
            f"model {name!r} was not found locally ({where}), and there is no network "
            f"({constants.ENDPOINT} cannot be reached), so it cannot be downloaded. Pass a "
            "local folder, or download it once with network access."
        )
    return name, False


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return False
    return isinstance(found, str)


def _hub_reachable(endpoint: str) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=NETWORK_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _load(
    source: str,
    model_id: str,
    local_only: bool,
    device: torch.device,
    dtype: torch.dtype,
    adapter: str | None = None,
) -> VLM:
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load the config of model {model_id!r}: {_short(error)}"
        ) from error
    model_type = getattr(config, "model_type", "?")
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ModelLoadError(
            f"model {model_id!r} (model_type {model_type!r}) has no image input: vepo-viz needs a "
            "vision-language model such as Qwen/Qwen2.5-VL-3B-Instruct"
        )
    processor = _load_processor(source, model_type, model_id, local_only)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, local_files_only=local_only
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelLoadError(f"cannot load the weights of {model_id!r}: {_short(error)}") from error
    if adapter is not None:
        from vepo_viz.models.lora import merge_adapter

        model = merge_adapter(model, adapter)
    model.to(device).eval()
    return VLM(model=model, processor=processor, model_id=model_id, device=device, dtype=dtype)


def _load_processor(source: str, model_type: str, model_id: str, local_only: bool):
    from transformers import AutoProcessor

    from vepo_viz.models.families import family_of
    from vepo_viz.models.processors import register_processors

    register_processors()  # AutoProcessor finds the no-video classes in saved folders too
    family = family_of(model_type)
    cls = family.processor() if family.processor is not None else None
    try:
        if cls is not None:
            processor = cls.from_pretrained(source, local_files_only=local_only)
        else:
            processor = AutoProcessor.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, TypeError, ImportError) as error:
        raise ModelLoadError(
            f"cannot load the processor of {model_id!r}: {_short(error)}"
        ) from error
    if getattr(processor, "image_processor", None) is None:
        raise ModelLoadError(
            f"the processor of {model_id!r} has no image processor (got {type(processor).__name__})"
        )
    if not getattr(processor, "chat_template", None):
        raise ModelLoadError(
            f"model {model_id!r} has no chat template; vepo-viz builds prompts with the "
            "model's own template (use an instruction-tuned checkpoint)"
        )
    return processor


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def quiet() -> None:
    """Silence transformers' progress bars and notes (a command-line run shows its own)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def versions() -> dict[str, str]:
    """{package: version} of the model stack (torch, transformers), for saved results."""
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
