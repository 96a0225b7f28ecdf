"""`analyze`: image + question (+ response) -> `TokenAnalysis`, the one place where the
model and the math meet.

Steps (shared/PAPER.md, "Definitions"):
1. prompt with the model's chat template; response generated (seeded) or pasted;
2. clean hidden states: recorded during generation (the clean pass is not repeated), or
   one teacher-forced pass over the pasted response;
3. one teacher-forced pass per counterfactual draw (K draws, fresh views of the clean
   image) -> K sets of hidden states, (T, D) each;
4. chunk by chunk over positions: logits through the output head for the clean and every
   noisy state, `scoring.token_stats`, top-k candidates; a chunk's (n, V) logits are freed
   before the next, so memory is O(chunk x V), never O(T x V);
5. mean (and spread) over draws, then scores and selections (`scoring.score_response`);
6. beside them (never changing them): the noise floor (for a generated response one more
   teacher-forced pass with the clean image, compared like a draw: vepo_viz.floor), the
   selection stability over draws, and, for the embedded model, warnings when the input
   is unlike its training suite (vepo_viz.ood).
"""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from vepo_viz import floor, ood
from vepo_viz.analysis_settings import AnalysisSettings
from vepo_viz.errors import NumericsError, VepoInputError
from vepo_viz.limits import RequestLimits, check_context
from vepo_viz.models import engine
from vepo_viz.models.images import image_digest, load_image
from vepo_viz.perturb import PerturbConfig, counterfactual_preview
from vepo_viz.results import Normalization, TokenAnalysis
from vepo_viz.scoring import ResponseScores, score_response

# ---- per-token statistics -----------------------------------------------------------


@dataclass(frozen=True)
class PerTokenStats:
    """Per-token arrays of one response: clean values (T,) and per-draw values (K, T)."""

    entropy: np.ndarray
    logprob: np.ndarray
    top_ids: np.ndarray  # (T, k)
    top_probs: np.ndarray  # (T, k)
    entropy_noisy: np.ndarray  # (K, T)
    jsd: np.ndarray  # (K, T)
    kl: np.ndarray  # (K, T)
    logprob_noisy: np.ndarray  # (K, T)
    top_probs_noisy: np.ndarray  # (K, T, k)
    extra: dict[str, np.ndarray]  # {hidden-state signal: (K, T)}

    @classmethod
    def of_row(cls, signals: engine.Signals, row: int = 0) -> PerTokenStats:
        """Row `row` of the engine's (B, T) / (K, B, T) signals, as numpy."""
        return cls(
            entropy=signals.entropy[row].numpy(),
            logprob=signals.logprob[row].numpy(),
            top_ids=signals.top_ids[row].numpy(),
            top_probs=signals.top_probs[row].numpy(),
            entropy_noisy=signals.entropy_noisy[:, row].numpy(),
            jsd=signals.jsd[:, row].numpy(),
            kl=signals.kl[:, row].numpy(),
            logprob_noisy=signals.logprob_noisy[:, row].numpy(),
            top_probs_noisy=signals.top_probs_noisy[:, row].numpy(),
            extra={name: x[:, row].numpy() for name, x in signals.extra.items()},
        )

    def draws(self, views: slice) -> PerTokenStats:
        """The same clean values with the per-view arrays of `views` only."""
        return replace(
            self,
            entropy_noisy=self.entropy_noisy[views],
            jsd=self.jsd[views],
            kl=self.kl[views],
            logprob_noisy=self.logprob_noisy[views],
            top_probs_noisy=self.top_probs_noisy[views],
            extra={name: x[views] for name, x in self.extra.items()},
        )

    def first(self, n: int) -> PerTokenStats:
        """The first n positions (one response of a padded batch)."""
        return PerTokenStats(
            entropy=self.entropy[:n],
            logprob=self.logprob[:n],
            top_ids=self.top_ids[:n],
            top_probs=self.top_probs[:n],
            entropy_noisy=self.entropy_noisy[:, :n],
            jsd=self.jsd[:, :n],
            kl=self.kl[:, :n],
            logprob_noisy=self.logprob_noisy[:, :n],
            top_probs_noisy=self.top_probs_noisy[:, :n],
            extra={name: x[:, :n] for name, x in self.extra.items()},
        )


# ---- the pipeline -------------------------------------------------------------------


def analyze(
    model,
    image,
    question: str,
    response: str | None = None,
    settings: AnalysisSettings | None = None,
    *,
    limits: RequestLimits | None = None,
) -> TokenAnalysis:
    """Analyse one response to a question about an image, token by token.

    Args:
        model: a `VLM` from `load_model` (or a hub id / folder, loaded and cached).
        image: a PIL image or a path to an image file.
        question: the question asked about the image (non-empty).
        response: a response to score as if the model had produced it; None = generate
            one with the settings' sampling parameters.
        settings: AnalysisSettings (None = the reference defaults).
        limits: bounds on the work (None = `RequestLimits()`); the model's context
            (prompt + response tokens) is always enforced.

    Returns:
        TokenAnalysis with every per-token statistic, scores and both selections.

    Raises:
        VepoInputError: bad image, empty question, empty response, bad settings, a
            request past `limits` or the model's context.
        NumericsError: NaN/inf logits.
        ModelLoadError: `model` names a model that cannot be loaded.
    """
    from vepo_viz.models import VLM, load_model

    settings, limits = check_request(question, response, settings, limits)
    vlm = model if isinstance(model, VLM) else load_model(model)
    return analyze_checked(vlm, load_image(image), question, response, settings, limits)


def check_request(
    question: str,
    response: str | None,
    settings: AnalysisSettings | None,
    limits: RequestLimits | None,
) -> tuple[AnalysisSettings, RequestLimits]:
    """(settings, limits) of a request whose text and settings pass `limits`, defaults
    filled in; VepoInputError otherwise. Costs no model work (the app refuses a request
    with it before waiting for the model)."""
    settings = settings if settings is not None else AnalysisSettings()
    if not isinstance(settings, AnalysisSettings):
        raise VepoInputError(f"settings must be an AnalysisSettings, got {type(settings).__name__}")
    if not isinstance(question, str) or not question.strip():
        raise VepoInputError("the question is empty: ask something about the image")
    if response is not None and not isinstance(response, str):
        raise VepoInputError(f"the response must be a string, got {type(response).__name__}")
    limits = limits if limits is not None else RequestLimits()
    if not isinstance(limits, RequestLimits):
        raise VepoInputError(f"limits must be a RequestLimits, got {type(limits).__name__}")
    limits.check_text(question, response)
    limits.check_settings(settings, generating=response is None)
    return settings, limits


def analyze_checked(
    vlm,
    rgb: Image.Image,
    question: str,
    response: str | None,
    settings: AnalysisSettings,
    limits: RequestLimits,
) -> TokenAnalysis:
    """`analyze` of a request already through `check_request`, with the image already
    loaded (`load_image`): the app loads and checks once, then calls this."""
    deadline = limits.deadline()  # model work only (a first load is not counted)
    n_draws = settings.perturb.n_draws
    context = model_context(vlm)

    timing: dict[str, float] = {}
    with _timed(timing, "prompt"):
        prompt = vlm.prompt(rgb, question)
    limits.check_image(int(prompt.inputs["pixel_values"].numel()), 1 + n_draws)
    if response is None:
        check_context(prompt.n_tokens, settings.max_new_tokens, context, generating=True)
        with _timed(timing, "generate"):
            generation = vlm.generate(
                prompt,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                seed=settings.seed,
            )
        if not generation.token_ids:
            raise VepoInputError(
                "the model ended its answer at once (an empty response); sample with "
                "temperature > 0, another seed, or paste a response"
            )
        token_ids, hidden_clean = generation.token_ids, generation.hidden
        text, truncated = vlm.decode(token_ids), not generation.finished
    else:
        with _timed(timing, "tokenize"):
            token_ids = vlm.response_ids(prompt, response)
        check_context(prompt.n_tokens, len(token_ids), context, generating=False)
        with _timed(timing, "clean_pass"):
            hidden_clean = vlm.hidden_states(prompt, token_ids)  # (T, D)
        # What the model scored: equal to `response` except where the tokenizer
        # normalises text or cannot encode some characters (then offsets follow this).
        text, truncated = vlm.decode(token_ids), False
    null_pass = response is None and settings.floor_pass
    with _timed(timing, "counterfactual"):
        # K draws and, for a generated response, the null pass (the clean image through
        # the counterfactual's path: the noise floor), batched into few forwards.
        views = [vlm.view_inputs(prompt, settings.perturb, k) for k in range(n_draws)]
        views += [{}] if null_pass else []

        def before_forward(first: int) -> None:
            what = f"counterfactual draw {first + 1} of {n_draws}"
            deadline.check(what if first < n_draws else "the noise-floor pass")

        hidden_views = vlm.view_hidden_states(prompt, token_ids, views, before_forward)
    deadline.check("the per-token statistics")
    with _timed(timing, "stats"):
        try:
            signals = engine.head_walk(
                vlm.head,
                hidden_clean[None],  # (1, T, D)
                [h[None] for h in hidden_views],  # (K [+ 1]) x (1, T, D)
                torch.tensor([token_ids], device=hidden_clean.device),  # (1, T)
                temperature=settings.tau,
                top_k=min(settings.top_k, vlm.vocab_size),
                rows=settings.chunk_size,
                n_vocab=vlm.vocab_size,
            )
        except ValueError as error:
            if "NaN/inf" in str(error) or "overflow" in str(error):
                raise NumericsError(
                    f"the model produced NaN/inf logits for this input ({vlm.dtype}); try "
                    "dtype='float32' (or 'bfloat16' instead of float16). Scoring said: "
                    f"{error}"
                ) from error
            raise
        stats = PerTokenStats.of_row(signals)
    stats, noise_floor = split_null_pass(stats) if null_pass else (stats, floor.NoiseFloor())
    return build_result(
        vlm, prompt, rgb, text, token_ids, stats, settings,
        truncated=truncated, noise_floor=noise_floor, generated=response is None, timing=timing,
    )  # fmt: skip


def build_result(
    vlm,
    prompt,
    rgb: Image.Image,
    text: str,
    token_ids: list[int],
    stats: PerTokenStats,
    settings: AnalysisSettings,
    *,
    truncated: bool,
    noise_floor: floor.NoiseFloor,
    generated: bool,
    timing: dict[str, float] | None = None,
    input_warnings: list[str] | None = None,
) -> TokenAnalysis:
    """The TokenAnalysis of one response from its engine signals (`stats`: the K draws,
    the null pass already split off): scores, token strings, warnings, the image views;
    built once. `timing` gets the "finish" and "preview" stages and the total;
    `input_warnings` (vepo_viz.ood) are computed unless given (a group shares them)."""
    timing = timing if timing is not None else {}
    with _timed(timing, "finish"):
        entropy_noisy, jsd, kl = (x.mean(0) for x in (stats.entropy_noisy, stats.jsd, stats.kl))
        scored = _score(stats, entropy_noisy, jsd, kl, settings, noise_floor)  # (T,) means
        spans = vlm.token_spans(token_ids, text)
        tokens = vlm.token_strings(token_ids, text, spans)
        top_tokens = _top_strings(vlm, stats.top_ids)
        if input_warnings is None:
            input_warnings = ood.input_warnings(vlm.model_id, rgb, prompt.question)
        grid, patch_size = patch_grid(vlm, prompt)
    with _timed(timing, "preview"):
        views = image_views(prompt.image, settings.perturb, vlm.image_normalization)
    timing["total"] = sum(v for k, v in timing.items() if k != "total")
    return TokenAnalysis(
        response=text,
        tokens=tokens,
        token_ids=np.asarray(token_ids),
        offsets=np.asarray(spans).reshape(-1, 2),
        entropy=stats.entropy,
        entropy_noisy=entropy_noisy,
        jsd=jsd,
        kl=kl,
        entropy_gap=entropy_noisy - stats.entropy,
        entropy_noisy_std=stats.entropy_noisy.std(0),
        jsd_std=stats.jsd.std(0),
        kl_std=stats.kl.std(0),
        entropy_gap_std=(stats.entropy_noisy - stats.entropy[None]).std(0),  # (K, T) -> (T,)
        logprob=stats.logprob,
        logprob_noisy=stats.logprob_noisy.mean(0),
        top_ids=stats.top_ids,
        top_tokens=top_tokens,
        top_probs=stats.top_probs,
        top_probs_noisy=stats.top_probs_noisy.mean(0),
        visual_sensitivity=scored.visual_sensitivity,
        scores=scored.scores,
        selected_vepo=scored.selected_vepo,
        selected_entropy=scored.selected_entropy,
        selection_share=scored.selection_share,
        draw_jaccard=scored.draw_jaccard,
        question=prompt.question,
        model_id=vlm.model_id,
        family=vlm.family.name,
        image_digest=image_digest(prompt.image),
        image_size=prompt.image.size,
        generated=generated,
        truncated=truncated,
        settings=settings,
        versions=package_versions(),
        timing=timing,
        image=views.image,
        image_normalization=views.normalization,
        counterfactual_image=views.counterfactual_image,
        counterfactual_caption=views.counterfactual_caption,
        noise_floor=noise_floor,
        entropy_noisy_draws=stats.entropy_noisy,
        jsd_draws=stats.jsd,
        kl_draws=stats.kl,
        patch_grid=grid,
        patch_size=patch_size,
        input_warnings=input_warnings,
        signals={name: x.mean(0) for name, x in stats.extra.items()},
    )


def model_context(vlm) -> int | None:
    """Most positions (prompt + response tokens) the model's config says it handles."""
    config = getattr(getattr(vlm, "model", None), "config", None)
    if config is None:
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def split_null_pass(stats: PerTokenStats) -> tuple[PerTokenStats, floor.NoiseFloor]:
    """(the K counterfactual draws' stats, the floor) from stats whose last "draw" is the
    null pass (the clean image, teacher-forced: vepo_viz.floor)."""
    jsd_null = stats.jsd[-1]  # (T,)
    gap_null = stats.entropy_noisy[-1] - stats.entropy  # (T,)
    return stats.draws(slice(None, -1)), floor.estimate_floor(jsd_null, gap_null)


def patch_grid(vlm, prompt) -> tuple[tuple[int, int] | None, int]:
    """((columns, rows) of the processor's patch grid, patch side in px), or (None, 0)
    when the family does not report a grid (image_grid_thw: Qwen2-VL and kin)."""
    grid = prompt.inputs.get("image_grid_thw")
    size = getattr(getattr(vlm.processor, "image_processor", None), "patch_size", 0)
    if grid is None or grid.numel() < 3:
        return None, 0
    _, rows, cols = (int(v) for v in grid.reshape(-1, 3)[0].tolist())
    return (cols, rows), int(size) if isinstance(size, int) else 0


def _score(
    stats: PerTokenStats,
    entropy_noisy: np.ndarray,
    jsd: np.ndarray,
    kl: np.ndarray,
    settings: AnalysisSettings,
    noise_floor: floor.NoiseFloor,
) -> ResponseScores:
    """`scoring.score_response` of the (T,) means over draws (and of each draw in
    `stats`: the selection stability)."""
    return score_response(
        entropy=stats.entropy,
        entropy_noisy=entropy_noisy,
        jsd=jsd,
        kl=kl,
        config=settings.scoring,
        exclude=(
            floor.at_floor(jsd, entropy_noisy - stats.entropy, noise_floor)
            if settings.skip_floor
            else None
        ),
        entropy_noisy_draws=stats.entropy_noisy,
        jsd_draws=stats.jsd,
        kl_draws=stats.kl,
    )


def _top_strings(vlm, top_ids: np.ndarray) -> list[list[str]]:
    """(T, k) decoded strings of the (T, k) candidate ids."""
    flat = top_ids.reshape(-1).tolist()
    strings = vlm.tokenizer.batch_decode(
        [[i] for i in flat], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    k = top_ids.shape[1]
    return [strings[i : i + k] for i in range(0, len(strings), k)]


@dataclass(frozen=True)
class ImageViews:
    """What the image views of a result show (`image_views`): the TokenAnalysis fields
    image, image_normalization, counterfactual_image and counterfactual_caption."""

    image: Image.Image
    """The image as the processor received it."""
    normalization: Normalization | None
    """(mean, std) of the processor's normalisation, or None if not known."""
    counterfactual_image: Image.Image
    """Draw 0's counterfactual preview (perturb.counterfactual_preview)."""
    counterfactual_caption: str
    """What the preview is, in one sentence."""


def image_views(
    image: Image.Image, perturb: PerturbConfig, normalization: Normalization | None = None
) -> ImageViews:
    """The image and draw 0's counterfactual preview under `perturb`, so that the views
    never call the model or perturb (`perturb.counterfactual_preview`)."""
    mean, std = normalization if normalization is not None else (None, None)
    preview, caption = counterfactual_preview(image, perturb, image_mean=mean, image_std=std)
    return ImageViews(image, normalization, preview, caption)


def add_views(
    result: TokenAnalysis,
    image: Image.Image | None = None,
    normalization: Normalization | None = None,
) -> TokenAnalysis:
    """`result` with what the views show (`image_views` under the result's settings): a
    new TokenAnalysis. `image`/`normalization` default to the result's own (a loaded
    result that stores its image but no preview gets one); `result` itself when there is
    no image."""
    image = image if image is not None else result.image
    if image is None:
        return result
    normalization = normalization if normalization is not None else result.image_normalization
    views = image_views(image, result.settings.perturb, normalization)
    return replace(
        result,
        image=views.image,
        image_normalization=views.normalization,
        counterfactual_image=views.counterfactual_image,
        counterfactual_caption=views.counterfactual_caption,
    )


def package_versions() -> dict[str, str]:
    from vepo_viz import __version__
    from vepo_viz.models import versions

    stack = versions()
    return {
        "vepo_viz": __version__,
        "torch": stack["torch"],
        "transformers": stack["transformers"],
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


@contextmanager
def _timed(timing: dict[str, float], stage: str):
    """Add the wall time (s) of the block to timing[stage]."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timing[stage] = timing.get(stage, 0.0) + time.perf_counter() - start
