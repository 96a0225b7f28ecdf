"""VEPO token selection as a plug-in of Hugging Face TRL's `GRPOTrainer`.

    trainer = VEPOGRPOTrainer(model=..., reward_funcs=..., args=VEPOGRPOConfig(...), ...)

TRL samples G completions per prompt and scores them; then, once per generation batch,
with the rollout (old) policy and no gradient, this plug-in:

1. runs the clean teacher-forced pass and, for rules that need it, one counterfactual
   pass per draw, each row on a fresh view of its own image (seed `view_seed(step, row)`,
   never one noise tensor stacked over the G completions of an image);
2. turns the hidden states into `scoring.token_stats` chunk by chunk through the output
   head (no (B, C, V) tensor of the whole batch);
3. selects with the rule of `train.rules.RULES` (the same `score_tokens` /
   `select_tokens` as the app), scope per response or per batch (gathered across
   processes, as TRL gathers its entropy threshold);
4. hands the selection to TRL's loss through the batch dict:
   - "mask": `tool_mask` (TRL multiplies it into the loss mask), so every loss type that
     normalises by a token count (grpo, bnpo, dapo, ...) averages over the selected
     tokens only, and unselected tokens get exactly zero gradient;
   - "weight": (B, C) advantages A * (1 + lambda * selected), which TRL accepts;
   - VPPO's per-response advantage scale multiplies the advantages;
5. every `trace_every` optimizer steps (main process), saves the first `trace_samples`
   completions with their per-token signals and selection as TokenAnalysis records
   (train/traces.py; rule "all" too: its entropy, every token selected).

The hook is `_generate_and_score_completions` (TRL maintainers' suggested extension
point): the plug-in calls TRL's own method and edits its output dict, and never copies
`_compute_loss`. The keys it reads and writes (prompt_ids, completion_ids,
completion_mask, advantages, tool_mask, num_items_in_batch, pixel_values, ...) are
tested against the pinned trl version (requirements.txt).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from vepo_viz import scoring
from vepo_viz.models import engine
from vepo_viz.models.batching import PIXEL_KEYS
from vepo_viz.models.batching import split_images as _split_images
from vepo_viz.perturb import MAX_SEED, MODES, PerturbConfig, image_view, make_generator
from vepo_viz.scoring import SCORING_KEYS, ScoringConfig
from vepo_viz.settings import field_default, field_docs
from vepo_viz.train import traces
from vepo_viz.train.rules import RULES, Selection, TokenSignals

LOSS_MODES = ("mask", "weight")

_MM_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "pixel_attention_mask",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
)
"""Multimodal keys of TRL's batch dict that the model's forward takes."""

VIEW_STRIDE = 1_000_003
"""view_seed(step, row) = (perturb_seed * VIEW_STRIDE + step) * VIEW_STRIDE + row."""


PERTURB_FIELDS: dict[str, str] = {
    "sigma": "sigma",
    "n_draws": "n_draws",
    "seed": "perturb_seed",
    "patch_size": "patch_size",
    "patch_prob": "patch_prob",
    "blur_radius": "blur_radius",
}
"""PerturbConfig field -> its VEPOGRPOConfig field (the mode is `perturb`: "" = the rule's
reference). The ScoringConfig fields of scoring.SCORING_KEYS keep their names."""


def _from(cls: type, name: str, help: str = "") -> Any:
    """A field whose default is `cls.name`'s (ScoringConfig, PerturbConfig: never written a
    second time) and whose help is its docstring unless given."""
    return field(
        default=field_default(cls.__dataclass_fields__[name]),
        metadata={"help": help or field_docs(cls).get(name, "")},
    )


@dataclass
class VEPOGRPOConfig(GRPOConfig):
    """TRL's GRPOConfig plus vepo-viz's token selection (defaults: the VEPO reference).

    Flat fields, as TRL's parsers (HfArgumentParser, TrlParser) read them; their defaults
    are ScoringConfig's and PerturbConfig's, and `scoring` / `perturb_config` give them
    back as those configs (the selection rules read `scoring`, as they do TrainConfig's)."""

    selection: str = field(
        default=RULES.reference,
        metadata={"help": "Token-selection rule (train.rules.RULES)."},
    )
    score_type: str = _from(ScoringConfig, "score_type")
    alpha: float = _from(ScoringConfig, "alpha")
    ratio: float = _from(ScoringConfig, "ratio")
    scope: str = _from(
        ScoringConfig, "scope", "response (reference) or batch (one cut over all processes)."
    )
    perturb: str = field(
        default="",
        metadata={"help": "Counterfactual mode (perturb.MODES); empty = the rule's reference."},
    )
    sigma: float = _from(PerturbConfig, "sigma")
    n_draws: int = _from(PerturbConfig, "n_draws")
    perturb_seed: int = _from(PerturbConfig, "seed")
    patch_size: int = _from(PerturbConfig, "patch_size")
    patch_prob: float = _from(PerturbConfig, "patch_prob")
    blur_radius: float = _from(PerturbConfig, "blur_radius")
    loss_mode: str = field(
        default="mask", metadata={"help": "mask: loss over selected tokens; weight: 1 + lambda."}
    )
    weight_lambda: float = field(default=1.0, metadata={"help": "lambda of loss_mode=weight."})
    vppo_rescale: bool = field(default=True, metadata={"help": "VPPO's advantage rescaling."})
    head_chunk_rows: int = field(
        default=0, metadata={"help": "Rows per output-head chunk (0: from the vocabulary size)."}
    )
    trace_every: int = field(
        default=0, metadata={"help": "Save a selection trace every N steps (0: never)."}
    )
    trace_samples: int = field(default=4, metadata={"help": "Completions per trace."})
    trace_dir: str = field(
        default="", metadata={"help": "Run folder whose traces/ gets them ('' = output_dir)."}
    )
    clean_from_generation: bool = field(
        default=True,
        metadata={
            "help": "Take the clean pass's hidden states from generation (the output head's "
            "inputs while transformers generates) instead of a second forward; a forward "
            "when generation ran elsewhere (vLLM, continuous batching, tool turns)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        RULES.check(self.selection)
        if self.scope not in ("response", "batch"):
            raise ValueError(f"scope={self.scope!r}: choose response or batch")
        if self.loss_mode not in LOSS_MODES:
            raise ValueError(f"loss_mode={self.loss_mode!r}: choose one of {LOSS_MODES}")
        if self.weight_lambda < 0:
            raise ValueError(f"weight_lambda={self.weight_lambda} must be >= 0")
        if self.trace_every < 0 or self.trace_samples < 1:
            raise ValueError("trace_every must be >= 0 and trace_samples >= 1")
        self.scoring  # noqa: B018 - validates score_type, alpha, ratio
        self.perturb_config  # noqa: B018 - validates the counterfactual settings

    @staticmethod
    def selection_fields(scoring: ScoringConfig, perturb: PerturbConfig) -> dict[str, Any]:
        """{field: value} of `scoring`'s selection and `perturb`'s parameters (not its
        mode: `perturb` is set apart, "" meaning the rule's reference)."""
        return {
            **{key: getattr(scoring, key) for key in SCORING_KEYS},
            **{ours: getattr(perturb, name) for name, ours in PERTURB_FIELDS.items()},
        }

    @property
    def rule(self):
        return RULES[self.selection]

    @property
    def scoring(self) -> ScoringConfig:
        """The selection settings as a ScoringConfig (built on each call: TRL's configs
        may be changed after they are made)."""
        return ScoringConfig(**{key: getattr(self, key) for key in SCORING_KEYS})

    @property
    def perturb_config(self) -> PerturbConfig:
        fields = {name: getattr(self, ours) for name, ours in PERTURB_FIELDS.items()}
        return PerturbConfig(mode=self.perturb or self.rule.perturb, **fields)


def view_seed(perturb_seed: int, step: int, row: int) -> int:
    """Seed of the counterfactual views of global batch row `row` at generation `step`,
    wrapped into [0, perturb.MAX_SEED] (the identity below it: perturb seeds < 17 at any
    step and row under a million; without the wrap, seed 18 and up could not train)."""
    return ((perturb_seed * VIEW_STRIDE + step) * VIEW_STRIDE + row) % (MAX_SEED + 1)


class VEPOGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that trains only on the tokens a vepo-viz rule selects."""

    args: VEPOGRPOConfig

    def __init__(self, *args, **kwargs) -> None:
        # TRL left-pads prompt ids itself but takes per-token fields (mm_token_type_ids,
        # token_type_ids) from the processor's own padding: with right padding those fall
        # out of step with the ids of every shorter prompt, and Qwen-VL then places the
        # image tokens wrongly (TRL sets "left" only for processors it loads itself).
        processor = kwargs.get("processing_class")
        tokenizer = getattr(processor, "tokenizer", processor)
        if tokenizer is not None and getattr(tokenizer, "padding_side", "left") != "left":
            tokenizer.padding_side = "left"
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, VEPOGRPOConfig):
            raise TypeError("VEPOGRPOTrainer needs args=VEPOGRPOConfig(...)")
        self._generation_step = 0
        self._capture: engine.GenerationCapture | None = None  # recording during generation
        self._captured: engine.GenerationCapture | None = None  # its record, while selecting
        self.clean_pass_source: str = ""
        """Where the latest batch's clean hidden states came from: generation or forward."""
        self.last_selection: dict[str, Any] | None = None
        """The latest batch's selection (tensors on CPU), for traces and tests."""

    # ---- the hook ------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._capture = engine.GenerationCapture() if self.args.clean_from_generation else None
        try:
            out = super()._generate_and_score_completions(inputs)
            self._captured, self._capture = self._capture, None
            self._select_into(out, inputs)
        finally:
            self._capture = self._captured = None
        return out

    def _select_into(self, out: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
        """Signals, selection and its hand-over to the loss for one generation batch."""
        step, self._generation_step = self._generation_step, self._generation_step + 1
        trace = self._trace_due()
        if self.args.selection == "all":
            self.last_selection = None
            if trace:  # no scores: trace the entropy, every valid token selected
                signals = self._signals(out, inputs, step)
                self._trace(out, inputs, signals, Selection(signals.mask, None))
            return
        signals = self._signals(out, inputs, step)
        selection = self._select(signals, step)
        self._apply(out, selection)
        self._log_selection(signals, selection)
        self.last_selection = {
            "step": step,
            "selected": selection.selected.cpu(),
            "scores": None if selection.scores is None else selection.scores.cpu(),
            "mask": signals.mask.cpu(),
            "entropy": signals.entropy.cpu(),
            "stats": None if signals.stats is None else signals.stats.to("cpu"),
            "signals": {name: x.cpu() for name, x in signals.extra.items()},
        }
        if trace:
            self._trace(out, inputs, signals, selection)

    # ---- selection traces ------------------------------------------------------------

    def _trace_step(self) -> int:
        """The optimizer step (as metrics.jsonl counts, from 1) this batch trains."""
        return int(self.state.global_step) + 1

    def _trace_due(self) -> bool:
        every = self.args.trace_every
        return bool(every) and self.model.training and self._trace_step() % every == 0

    def _trace(self, out, inputs, signals: TokenSignals, selection: Selection) -> None:
        """Write this batch's first trace_samples rows (process 0's) as TokenAnalysis."""
        if not self.accelerator.is_main_process:
            return
        args, step = self.args, self._trace_step()
        batch = traces.TraceBatch(
            completion_ids=out["completion_ids"].cpu(),
            mask=signals.mask.cpu(),
            entropy=signals.entropy.cpu(),
            selected=selection.selected.cpu(),
            stats=None if signals.stats is None else signals.stats.to("cpu"),
            scores=_cpu(selection.scores),
            logprob=_cpu(signals.logp_old),
            logprob_noisy=_cpu(signals.logp_noisy),
            advantages=_cpu(out.get("advantages")),
        )
        settings = traces.trace_settings(
            args.selection,
            args.scoring,
            args.perturb_config,
            max_new_tokens=max(1, int(args.max_completion_length or 1)),
            temperature=float(self.temperature),
            seed=int(args.seed),
        )
        model = self.accelerator.unwrap_model(self.model)
        config = getattr(model, "config", None)
        records = traces.build_records(
            batch,
            tokenizer=self.processing_class,
            questions=[traces.question_of(x) for x in inputs],
            rule=args.selection,
            settings=settings,
            model_id=str(getattr(config, "_name_or_path", "") or ""),
            family=str(getattr(config, "model_type", "") or ""),
            rows=args.trace_samples,
            step=step,
            entropy_ratio=args.ratio,
        )
        traces.save_traces(args.trace_dir or args.output_dir, step, records)

    # ---- signals ---------------------------------------------------------------------

    @torch.no_grad()
    def _signals(self, out: dict[str, Any], inputs: list[dict], step: int) -> TokenSignals:
        """Per-token signals of the rollout policy over the batch's completions (the
        engine's passes and head walk, as `analyze` runs them)."""
        model = self.accelerator.unwrap_model(self.model)
        if hasattr(model, "get_base_model"):  # peft: the transformers model, LoRA injected
            model = model.get_base_model()
        mask = out["completion_mask"].bool()
        if "tool_mask" in out:
            mask = mask & out["tool_mask"].bool()
        ids = out["completion_ids"]  # (B, C)
        mm = {k: out[k] for k in _MM_KEYS if k in out}
        batch = _teacher_forced_inputs(out, mm)  # (B, P+C)
        P, C = out["prompt_ids"].shape[1], ids.shape[1]
        hidden_clean = self._clean_hidden(model, out, batch)  # (B, C, D)
        views: list[torch.Tensor] = []
        if self.args.rule.needs_counterfactual(self.args):
            pixel_views = [
                self._view(out, inputs, mm, step, draw)
                for draw in range(self.args.perturb_config.n_draws)
            ]
            views = engine.view_passes(model, batch, P, C, pixel_views, pixel_keys=PIXEL_KEYS)
        head, rows = engine.output_head(model), self.args.head_chunk_rows or None
        V = engine.head_vocab_size(head, hidden_clean)
        signals = engine.head_walk(
            head, hidden_clean, views, ids,
            temperature=self.temperature, rows=rows, n_vocab=V,
            min_chunks=self._max_chunks(V, hidden_clean, rows),
        )  # fmt: skip
        stats = signals.stats()  # the mean over draws, as analyze() reports it
        return TokenSignals(
            mask=mask,
            logp_old=signals.logprob.to(ids.device),
            entropy=(stats.entropy if stats is not None else signals.entropy).to(ids.device),
            stats=None if stats is None else stats.to(ids.device),
            logp_noisy=signals.logprob_noisy.mean(0).to(ids.device) if views else None,
            extra={name: x.mean(0) for name, x in signals.extra.items()},
        )

    def _generate_single_turn(self, *args, **kwargs):
        """TRL's generation, with the output head's inputs recorded (`clean_from_generation`)."""
        capture = self._capture
        if capture is None:
            return super()._generate_single_turn(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        with capture.recording_model(model):
            return super()._generate_single_turn(*args, **kwargs)

    def _clean_hidden(self, model, out: dict[str, Any], batch: dict[str, torch.Tensor]):
        """(B, C, D) clean hidden states: recorded during generation, else one forward."""
        capture = self._captured
        ids = out["completion_ids"]
        hidden = None
        if capture is not None and "tool_mask" not in out:
            hidden = capture.hidden(*ids.shape)
        self.clean_pass_source = "forward" if hidden is None else "generation"
        if hidden is not None:
            return hidden
        P, C = out["prompt_ids"].shape[1], ids.shape[1]
        return engine.response_states(model, batch, P, C)

    def _max_chunks(self, V: int, hidden: torch.Tensor, rows: int | None) -> int:
        """The most head chunks any process walks: ZeRO-3 gathers the head's weights in a
        collective on every call, so every process makes the same number of calls."""
        if self.accelerator.num_processes == 1:
            return 0
        B, C, _ = hidden.shape
        step = engine.chunk_rows(V, hidden.device, rows)
        n = torch.tensor([-(-B * C // step)], device=hidden.device)
        return int(self.accelerator.gather(n).max())

    def _view(self, out, inputs, mm, step: int, draw: int) -> dict[str, torch.Tensor]:
        """Image inputs of counterfactual view `draw`, every row from its own generator."""
        from vepo_viz.models.families import family_of

        cfg = self.args.perturb_config
        rows = out["completion_ids"].shape[0]
        offset = self.accelerator.process_index * rows
        seeds = [view_seed(cfg.seed, step, offset + b) for b in range(rows)]
        if MODES[cfg.mode].space == "normalized":
            family = family_of(self.accelerator.unwrap_model(self.model).config.model_type)
            pieces = _split_images(mm, rows)
            viewed = [
                family.view(
                    piece,
                    cfg.mode,
                    sigma=cfg.sigma,
                    generator=make_generator(seed, draw, piece.device),
                )
                for piece, seed in zip(pieces, seeds, strict=True)
            ]
            return {**mm, "pixel_values": torch.cat(viewed, dim=0)}
        images = [_image_of(x) for x in inputs]
        viewed = [
            image_view(im, PerturbConfig(**{**_perturb_fields(cfg), "seed": s}), draw)
            for im, s in zip(images, seeds, strict=True)
        ]
        processed = self.processing_class.image_processor(images=viewed, return_tensors="pt")
        new = {k: v.to(mm["pixel_values"].device) for k, v in processed.items() if k in mm}
        return {**mm, **new}

    # ---- selection -------------------------------------------------------------------

    def _select(self, signals: TokenSignals, step: int) -> Selection:
        rule, cfg = self.args.rule, self.args.scoring
        generator = torch.Generator().manual_seed(view_seed(self.args.seed, step, 0))
        if cfg.scope != "batch" or self.accelerator.num_processes == 1:
            return rule.select(_rule_config(self.args), signals, generator)
        # One cut over the whole batch of every process: score locally, gather, cut.
        local = rule.select(
            _rule_config(self.args, scope="response", ratio=1.0), signals, generator
        )
        scores = local.scores if local.scores is not None else signals.mask.float()
        gathered_scores = self._gather_rows(scores, 0.0)
        gathered_mask = self._gather_rows(signals.mask, False)
        selected_all = scoring.select_tokens(gathered_scores, gathered_mask, cfg.ratio, "batch")
        rows = signals.mask.shape[0]
        start = self.accelerator.process_index * rows
        selected = selected_all[start : start + rows, : signals.mask.shape[1]]
        return Selection(
            selected=selected, scores=local.scores, advantage_scale=local.advantage_scale
        )

    def _gather_rows(self, x: torch.Tensor, pad: Any) -> torch.Tensor:
        x = self.accelerator.pad_across_processes(x, dim=1, pad_index=pad)
        return self.accelerator.gather(x)

    def _apply(self, out: dict[str, Any], selection: Selection) -> None:
        """Write the selection into TRL's batch dict (see the module docstring)."""
        selected = selection.selected
        advantages = out["advantages"]
        if selection.advantage_scale is not None:
            advantages = advantages * selection.advantage_scale.to(advantages.dtype)
        if self.args.loss_mode == "mask":
            tool_mask = out.get("tool_mask")
            keep = selected.to(out["completion_mask"].dtype)
            out["tool_mask"] = keep if tool_mask is None else tool_mask * keep
            loss_mask = out["completion_mask"] * out["tool_mask"]
            out["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        else:
            weight = 1.0 + self.args.weight_lambda * selected.to(advantages.dtype)  # (B, C)
            advantages = (advantages[:, None] if advantages.dim() == 1 else advantages) * weight
        out["advantages"] = advantages

    def _log_selection(self, signals: TokenSignals, selection: Selection) -> None:
        mode = "train" if self.model.training else "eval"
        mask, selected = signals.mask, selection.selected

        def mean(x: torch.Tensor, where: torch.Tensor) -> float:
            total = self.accelerator.gather(torch.stack([(x * where).sum(), where.sum()]).float())
            total = total.view(-1, 2).sum(0)
            return float(total[0] / total[1]) if float(total[1]) > 0 else float("nan")

        metrics = self._metrics[mode]
        metrics["vepo/selected_fraction"].append(mean(selected.float(), mask.float()))
        metrics["vepo/entropy_selected"].append(mean(signals.entropy, selected.float()))
        metrics["vepo/entropy_all"].append(mean(signals.entropy, mask.float()))
        if signals.stats is not None:
            vis = scoring.visual_sensitivity(signals.stats, mask, self.args.alpha)
            metrics["vepo/jsd_selected"].append(mean(signals.stats.jsd, selected.float()))
            metrics["vepo/jsd_all"].append(mean(signals.stats.jsd, mask.float()))
            metrics["vepo/vis_selected"].append(mean(vis, selected.float()))
            metrics["vepo/vis_all"].append(mean(vis, mask.float()))
        for name, values in signals.extra.items():  # registered hidden-state signals
            device = mask.device
            metrics[f"vepo/{name}_selected"].append(mean(values.to(device), selected.float()))
            metrics[f"vepo/{name}_all"].append(mean(values.to(device), mask.float()))


def _rule_config(args: VEPOGRPOConfig, **overrides: Any) -> SimpleNamespace:
    """What a selection rule reads: `scoring` (with `overrides`) and `vppo_rescale`."""
    scoring_cfg = replace(args.scoring, **overrides)
    return SimpleNamespace(scoring=scoring_cfg, vppo_rescale=args.vppo_rescale)


def _cpu(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.detach().cpu()


def _perturb_fields(cfg: PerturbConfig) -> dict[str, Any]:
    return asdict(cfg)


def _image_of(example: dict[str, Any]):
    if example.get("image") is not None:
        return example["image"]
    images = example.get("images") or []
    if len(images) != 1:
        raise ValueError("pixel-space counterfactual views need exactly one image per example")
    return images[0]


def _teacher_forced_inputs(out: dict[str, Any], mm: dict[str, torch.Tensor]) -> dict:
    """The model inputs of prompt + completion rows from TRL's batch dict (its per-token
    multimodal fields already span prompt + completion)."""
    prompt = {"input_ids": out["prompt_ids"], "attention_mask": out["prompt_mask"]}
    batch = engine.with_response(prompt, out["completion_ids"], out["completion_mask"])
    return {**batch, **mm}
