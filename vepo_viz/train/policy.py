"""The policy being trained: the one `VLM` adapter plus what training holds around it.

    policy = VLMPolicy.load(cfg)            # full fine-tuning or LoRA, per cfg.finetune
    responses = policy.generate(prompts, n_per_prompt=8, max_new_tokens=32, temperature=1.0, seed=s)
    batch = policy.encode(prompts, responses)            # left-padded prompt + right-padded response
    logits = policy.response_logits(batch)               # (n, T, V), position t predicts token t
    views = policy.counterfactual_inputs(batch, "gaussian", sigma=2.0, generator=g)

Prompts, sampling, teacher-forced passes, counterfactual views and LoRA are the adapter's
batched calls (`vepo_viz.models.batching`, the same code the Analyze tab and the embedded
model's evaluation use). This module only holds the training state: which parameters
train, gradient checkpointing, the frozen reference for the KL term, saving/resuming.

`FakePolicy`-style stand-ins (tests) only need encode / response_logits /
counterfactual_inputs / generate / decode / parameters.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch

from vepo_viz.models.batching import SequenceBatch
from vepo_viz.models.sampling import derive_seed
from vepo_viz.train.config import AUTO_LORA_PARAMS, TrainConfig
from vepo_viz.train.data import TaskPrompt

__all__ = ["VLMPolicy", "SequenceBatch", "derive_seed", "make_generator", "load_fresh"]

EMBEDDED_NAMES = ("tiny", "embedded")
"""Values of `model` meaning the embedded tiny model (the app's model box says "embedded")."""


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


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
        # peft injects the adapters into self.model in place; keep calling the plain model.
        self.peft_model = self.vlm.attach_lora(
            self.cfg.lora_r, self.cfg.lora_alpha, self.cfg.lora_dropout, self.cfg.lora_targets
        )

    def parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimizer updates."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def n_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        total = sum(p.numel() for p in self.model.parameters())
        return sum(p.numel() for p in self.parameters()), total

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    # ---- prompts, sequences, passes: the adapter's batched calls --------------------

    def _pairs(self, prompts: list[TaskPrompt]) -> list:
        return [(p.image, p.question + self.cfg.prompt_suffix) for p in prompts]

    def encode(
        self, prompts: list[TaskPrompt], responses: list[list[int]], n_response: int | None = None
    ) -> SequenceBatch:
        """Prompts (left-padded) followed by their responses (right-padded to n_response)."""
        return self.vlm.encode(self._pairs(prompts), responses, n_response)

    def response_logits(
        self,
        batch: SequenceBatch,
        image_inputs: dict[str, torch.Tensor] | None = None,
        model: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """(n, T, V) logits predicting each response token (teacher-forced; gradients flow
        outside torch.no_grad()). `image_inputs` replaces the pixel inputs (a view)."""
        return self.vlm.response_logits(batch, image_inputs, model=model or self.model)

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
        perturb = dataclasses.replace(self.cfg.perturb_config, mode=mode, sigma=sigma)
        return self.vlm.batch_view_inputs(batch, perturb, generator)

    def generate(
        self,
        prompts: list[TaskPrompt],
        *,
        n_per_prompt: int,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[list[int]]:
        """n_per_prompt responses per prompt, prompt-major (see `VLM.sample`)."""
        return self.vlm.sample(
            self._pairs(prompts),
            n_per_prompt=n_per_prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
        )

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
            self.model = self.vlm.model = merged_model
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
        self.vlm.load_lora_weights(self.peft_model, folder)

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
