"""The policy being trained: a transformers VLM behind the batched calls GRPO needs.

    policy = VLMPolicy.load(cfg)            # full fine-tuning or LoRA, per cfg.finetune
    responses = policy.generate(prompts, n_per_prompt=8, max_new_tokens=32, temperature=1.0, seed=s)
    batch = policy.encode(prompts, responses)            # left-padded prompt + right-padded response
    logits = policy.response_logits(batch)               # (n, T, V), position t predicts token t
    views = policy.counterfactual_inputs(batch, "gaussian", sigma=2.0, generator=g)

Loading, chat templates, end-of-turn tokens, pixel layouts and seeded sampling come from
`vepo_viz.models` (the same code the Analyze tab uses); what this module adds is batching
(many prompts x G responses per call) and the trainable wrapper (LoRA via peft, gradient
checkpointing, a frozen reference for the KL term).

`FakePolicy`-style stand-ins (tests) only need encode / response_logits /
counterfactual_inputs / generate / decode / parameters.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from vepo_viz.errors import ModelLoadError
from vepo_viz.perturb import perturb_image
from vepo_viz.train.config import AUTO_LORA_PARAMS, TrainConfig
from vepo_viz.train.data import TaskPrompt

GENERATION_BATCH = 64
"""Sequences generated per `model.generate` call (memory bound on real models)."""

EMBEDDED_NAMES = ("tiny", "embedded")
"""Values of `model` meaning the embedded tiny model (the app's model box says "embedded")."""

_EXTEND_WITH_ONES = ("attention_mask",)
_EXTEND_WITH_ZEROS = ("mm_token_type_ids", "token_type_ids")
_PIXEL_KEYS = ("pixel_values", "pixel_attention_mask", "image_grid_thw", "image_sizes")


def placeholder_token_ids(config) -> list[int]:
    """Ids of the image/video placeholder and delimiter tokens named in a model config."""
    ids = set()
    for cfg in (config, getattr(config, "text_config", None)):
        for name, value in (vars(cfg) if cfg is not None else {}).items():
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and ("token_id" in name or "token_index" in name)
                and any(w in name for w in ("image", "video", "vision", "boi", "eoi"))
            ):
                ids.add(value)
    return sorted(ids)


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across runs and machines)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@dataclass(eq=False)
class SequenceBatch:
    """Prompt + response sequences of one micro-batch (n rows), on the model's device."""

    inputs: dict[str, torch.Tensor]
    """Model inputs of the clean pass: input_ids (n, P + T), attention_mask, pixel inputs."""
    response_ids: torch.Tensor
    """(n, T) sampled token ids, 0 on padding."""
    mask: torch.Tensor
    """(n, T) bool, True on real response tokens."""
    texts: list[str] = field(default_factory=list)
    """Rendered prompt texts (image tokens unexpanded), for pixel-space views."""
    images: list[Image.Image] = field(default_factory=list)
    """Prompt images as processed, for pixel-space views."""

    @property
    def n_rows(self) -> int:
        return int(self.response_ids.shape[0])

    @property
    def n_response(self) -> int:
        return int(self.response_ids.shape[1])


class VLMPolicy:
    """A trainable transformers VLM (see module docstring)."""

    def __init__(self, vlm, cfg: TrainConfig, lora: bool) -> None:
        self.vlm = vlm
        self.cfg = cfg
        self.lora = lora
        self.model = vlm.model  # the (possibly LoRA-injected) transformers model
        self.peft_model = None
        self.reference = None
        self.processor = vlm.processor
        self.device = vlm.device
        self._has_logits_to_keep = (
            "logits_to_keep" in inspect.signature(self.model.forward).parameters
        )
        self.placeholder_ids = placeholder_token_ids(self.model.config)
        bos = self.processor.tokenizer.bos_token
        self._bos = bos
        self.pad_id = self.processor.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = vlm.eos_token_ids[0]

    # ---- construction -----------------------------------------------------------

    @classmethod
    def load(cls, cfg: TrainConfig, source: str | None = None) -> VLMPolicy:
        """The model of cfg.model (or `source`, e.g. a checkpoint folder), ready to train."""
        vlm = load_fresh(source or cfg.model, cfg.device, cfg.dtype)
        n_params = sum(p.numel() for p in vlm.model.parameters())
        lora = cfg.finetune == "lora" or (cfg.finetune == "auto" and n_params > AUTO_LORA_PARAMS)
        policy = cls(vlm, cfg, lora)
        if lora:
            policy._add_lora()
        else:
            for p in vlm.model.parameters():
                p.requires_grad_(True)
        if cfg.gradient_checkpointing:
            kwargs = {"use_reentrant": False}
            if hasattr(vlm.model, "activation_checkpointing_enable"):
                vlm.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:  # transformers < 5.x
                vlm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if cfg.kl_beta > 0 and not lora:
            # The reference is the run's initial model, also when resuming from a checkpoint.
            initial = (
                vlm.model if source is None else load_fresh(cfg.model, cfg.device, cfg.dtype).model
            )
            policy.reference = copy.deepcopy(initial).eval().requires_grad_(False)
        return policy

    def _add_lora(self) -> None:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as error:  # pragma: no cover - peft is a dev/gpu dependency
            raise ModelLoadError(
                "LoRA needs peft: pip install 'vepo-viz[gpu]' (or set finetune = \"full\")"
            ) from error
        config = LoraConfig(
            r=self.cfg.lora_r,
            lora_alpha=self.cfg.lora_alpha,
            lora_dropout=self.cfg.lora_dropout,
            target_modules=self.cfg.lora_targets or self.vlm.family.lora_targets,
            bias="none",
        )
        try:
            self.peft_model = get_peft_model(self.model, config)
        except ValueError as error:
            raise ModelLoadError(
                f"LoRA found no target modules in this model ({error}); set lora_targets to a "
                "regex over its module names (print(model) lists them)"
            ) from error
        # peft injects the adapters into self.model in place; keep calling the plain model.

    def parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimizer updates."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def n_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        total = sum(p.numel() for p in self.model.parameters())
        return sum(p.numel() for p in self.parameters()), total

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    # ---- prompts and sequences --------------------------------------------------

    def _render(self, prompt: TaskPrompt) -> tuple[str, Image.Image]:
        from vepo_viz.models.images import fit_image

        question = prompt.question + self.cfg.prompt_suffix
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
        ]
        text = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return text, fit_image(prompt.image.convert("RGB"), self.vlm.max_image_pixels)

    def _process(self, texts: list[str], images: list[Image.Image]) -> dict[str, torch.Tensor]:
        tok = self.processor.tokenizer
        tok.padding_side = "left"
        add_special = not (self._bos is not None and texts[0].startswith(self._bos))
        batch = self.processor(
            text=texts,
            images=[[im] for im in images],
            return_tensors="pt",
            padding=True,
            add_special_tokens=add_special,
        )
        return {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def encode(
        self, prompts: list[TaskPrompt], responses: list[list[int]], n_response: int | None = None
    ) -> SequenceBatch:
        """Prompts (left-padded) followed by their responses (right-padded to n_response)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        T = n_response or max(1, max(len(r) for r in responses))
        rendered = [self._render(p) for p in prompts]
        texts = [t for t, _ in rendered]
        images = [im for _, im in rendered]
        inputs = self._process(texts, images)
        ids = torch.zeros(len(responses), T, dtype=torch.long)
        mask = torch.zeros(len(responses), T, dtype=torch.bool)
        for i, r in enumerate(responses):
            ids[i, : len(r)] = torch.tensor(r[:T], dtype=torch.long)
            mask[i, : len(r)] = True
        ids, mask = ids.to(self.device), mask.to(self.device)
        filled = torch.where(mask, ids, self.pad_id)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], filled], dim=1)  # (n, P + T)
        for key in _EXTEND_WITH_ONES + _EXTEND_WITH_ZEROS:
            if key in inputs:
                extra = (
                    mask.to(inputs[key].dtype)
                    if key in _EXTEND_WITH_ONES
                    else torch.zeros_like(ids, dtype=inputs[key].dtype)
                )
                inputs[key] = torch.cat([inputs[key], extra], dim=1)  # (n, P + T)
        return SequenceBatch(inputs, ids, mask, texts, images)

    # ---- forward passes ---------------------------------------------------------

    def response_logits(
        self,
        batch: SequenceBatch,
        image_inputs: dict[str, torch.Tensor] | None = None,
        model: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """(n, T, V) logits predicting each response token (teacher-forced).

        `image_inputs` replaces the pixel inputs (a counterfactual view). Gradients flow
        when called outside torch.no_grad().
        """
        model = model or self.model
        inputs = dict(batch.inputs)
        if image_inputs:
            inputs.update(image_inputs)
        T = batch.n_response
        if self._has_logits_to_keep:
            logits = model(**inputs, use_cache=False, logits_to_keep=T + 1).logits  # (n, T+1, V)
        else:  # pragma: no cover - every supported family has logits_to_keep
            logits = model(**inputs, use_cache=False).logits[:, -(T + 1) :]
        return logits[:, :-1]  # (n, T, V)

    @torch.no_grad()
    def reference_logits(self, batch: SequenceBatch) -> torch.Tensor:
        """(n, T, V) logits of the frozen initial model (LoRA: adapters switched off)."""
        if self.peft_model is not None:
            with self.peft_model.disable_adapter():
                return self.response_logits(batch)
        if self.reference is None:
            raise RuntimeError("no reference model: kl_beta was 0 when the policy was loaded")
        return self.response_logits(batch, model=self.reference)

    def counterfactual_inputs(
        self, batch: SequenceBatch, mode: str, *, sigma: float, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Pixel inputs of a fresh counterfactual view of every image of the batch."""
        from vepo_viz.perturb import NORMALIZED_MODES

        if mode in NORMALIZED_MODES:
            view = self.vlm.family.view(
                batch.inputs["pixel_values"], mode, sigma=sigma, generator=generator
            )
            return {"pixel_values": view}
        images = [perturb_image(im, mode, sigma=sigma, generator=generator) for im in batch.images]
        inputs = self._process(batch.texts, images)
        return {k: v for k, v in inputs.items() if k in _PIXEL_KEYS}

    # ---- generation -------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts: list[TaskPrompt],
        *,
        n_per_prompt: int,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[list[int]]:
        """n_per_prompt responses per prompt, prompt-major (all of prompt 0 first).

        temperature > 0 samples with an explicit generator (models.sampling.SeededSampler,
        no global RNG); 0 decodes greedily. Image/video placeholder tokens are never
        generated (a response holding one could not be teacher-forced); a trained model
        gives them ~0 probability anyway. Each response ends with its end-of-turn token
        when one was produced (the token is trained on); otherwise it is cut at
        max_new_tokens.
        """
        from transformers import GenerationConfig, LogitsProcessorList

        from vepo_viz.models.sampling import SeededSampler

        was_training = self.model.training
        self.model.eval()
        eos = list(self.vlm.eos_token_ids)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=1.0,
            top_p=1.0,
            top_k=None,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            eos_token_id=eos,
            pad_token_id=self.pad_id,
            suppress_tokens=self.placeholder_ids or None,
        )
        expanded = [p for p in prompts for _ in range(n_per_prompt)]
        out: list[list[int]] = []
        for chunk_index, start in enumerate(range(0, len(expanded), GENERATION_BATCH)):
            chunk = expanded[start : start + GENERATION_BATCH]
            rendered = [self._render(p) for p in chunk]
            inputs = self._process([t for t, _ in rendered], [im for _, im in rendered])
            processors = LogitsProcessorList()
            if temperature > 0:
                processors.append(SeededSampler(temperature, 1.0, derive_seed(seed, chunk_index)))
            sequences = self.model.generate(
                **inputs, generation_config=config, logits_processor=processors
            )
            new = sequences[:, inputs["input_ids"].shape[1] :].tolist()  # (n, new)
            for row in new:
                cut = len(row)
                for i, token in enumerate(row):
                    if token in eos:
                        cut = i + 1  # keep the end-of-turn token
                        break
                out.append(row[:cut])
        self.model.train(was_training)
        return out

    def token_kinds(self, prompt: TaskPrompt, token_ids: list[int]) -> tuple[str, ...] | None:
        """Kind of each response token ("visual", "template", "free", "answer"; the
        end-of-turn token is "template") when the prompt is a suite example and the
        response follows its template, else None."""
        from vepo_viz.tasks import token_kinds

        if prompt.example is None or not token_ids:
            return None
        ids = list(token_ids)
        n_end = 1 if ids[-1] in self.vlm.eos_token_ids else 0
        body = ids[: len(ids) - n_end]
        text = self.vlm.decode(body)
        spans = prompt.example.annotate(text)
        if spans is None:
            return None
        kinds = token_kinds(self.vlm.token_spans(body, text), spans, text) if body else []
        return tuple(kinds) + ("template",) * n_end

    def decode(self, token_ids: list[int]) -> str:
        """Response text for the verifier (special tokens dropped)."""
        return self.processor.tokenizer.decode(token_ids, skip_special_tokens=True)

    # ---- saving -----------------------------------------------------------------

    def save(self, folder: str | Path, merged: bool = False) -> Path:
        """Weights + processor in `folder`, loadable with `load_model(folder)`.

        Full fine-tuning saves the whole model. LoRA saves the adapter (plus
        adapter_config.json naming the base) unless merged=True, which folds the adapter
        into the weights and saves a plain model (the end of a run: the policy keeps
        working, but its adapter is gone).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.peft_model is not None and not merged:
            self.peft_model.save_pretrained(folder)
        elif self.peft_model is not None:
            merged_model = self.peft_model.merge_and_unload()
            merged_model.save_pretrained(folder)
            self.model = merged_model
            self.peft_model = None
        else:
            self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)
        generation_config = getattr(self.model, "generation_config", None)
        if generation_config is not None:
            generation_config.save_pretrained(folder)
        return folder

    def load_adapter(self, folder: str | Path) -> None:
        """Load LoRA adapter weights saved by `save` into this policy (resume)."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = load_file(str(Path(folder) / "adapter_model.safetensors"))
        set_peft_model_state_dict(self.peft_model, state)

    def describe(self) -> dict:
        trainable, total = self.n_parameters()
        return {
            "model": self.vlm.model_id,
            "family": self.vlm.family.label,
            "device": str(self.device),
            "dtype": str(self.vlm.dtype).replace("torch.", ""),
            "finetune": "lora" if self.lora else "full",
            "trainable_params": trainable,
            "total_params": total,
        }


def load_fresh(name_or_path: str, device: str = "auto", dtype: str = "auto"):
    """A private `VLM` to train (load_model(cache=False)): never the shared read-only
    instance the Analyze tab relies on staying as loaded."""
    from vepo_viz.models import load_model

    name = None if name_or_path in EMBEDDED_NAMES else name_or_path
    return load_model(name, device=device, dtype=None if dtype == "auto" else dtype, cache=False)
