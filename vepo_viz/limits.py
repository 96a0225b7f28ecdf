"""`RequestLimits`: bounds on the work of one analysis, each a named setting.

A served app must not let one request run for minutes (a 100,000-character question
once did, past the model's context, into garbage) while other sessions wait. These
bounds are checked before the model work they bound, so a refused request costs
nothing; each message names the setting (and its flag: `--limit-max-question-chars`, ...).
The model's context (prompt + response tokens) is not a setting: it is read from the
model's config. `vepo_viz.analyze` applies `RequestLimits()` unless given others.
`CacheSettings` bounds the shared model cache (vepo_viz.models.cache). No torch here:
app.py's flags are built from these without loading it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from vepo_viz.errors import VepoInputError


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on one analysis (the app's, the CLI's and the API's defaults)."""

    max_question_chars: int = 4_000
    """Longest question, in characters."""
    max_response_chars: int = 40_000
    """Longest pasted response, in characters."""
    max_new_tokens: int = 1024
    """Most tokens one generation may ask for (AnalysisSettings.max_new_tokens)."""
    max_draws: int = 16
    """Most counterfactual draws K of one analysis (PerturbConfig.n_draws)."""
    max_image_elements: int = 200_000_000
    """Most elements of the processed image tensors of one analysis, the clean view and
    the K counterfactual views together (pixel_values elements x (1 + K))."""
    time_budget_s: float = 300.0
    """Seconds one analysis may run; checked between its model passes (0 = no budget)."""
    max_group: int = 16
    """Most responses G of one group analysis (vepo_viz.group: sampled in one batch)."""

    def __post_init__(self) -> None:
        for name in (
            "max_question_chars",
            "max_response_chars",
            "max_new_tokens",
            "max_draws",
            "max_image_elements",
            "max_group",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise VepoInputError(f"RequestLimits.{name}={value!r} must be an int >= 1")
        budget = self.time_budget_s
        if isinstance(budget, bool) or not isinstance(budget, int | float):
            raise VepoInputError(f"RequestLimits.time_budget_s={budget!r} must be a number")
        if not (math.isfinite(budget) and budget >= 0):
            raise VepoInputError(
                f"RequestLimits.time_budget_s={budget!r} must be finite and >= 0 (0 = none)"
            )

    def check_text(self, question: str, response: str | None) -> None:
        """Valid Unicode and within max_question_chars / max_response_chars."""
        check_unicode("question", question)
        _check_length("question", question, self.max_question_chars, "max_question_chars")
        if response is not None:
            check_unicode("response", response)
            _check_length("response", response, self.max_response_chars, "max_response_chars")

    def check_settings(self, settings: Any, generating: bool) -> None:
        """max_new_tokens (when generating) and K within their bounds."""
        if generating and settings.max_new_tokens > self.max_new_tokens:
            raise VepoInputError(
                f"max new tokens {settings.max_new_tokens} is more than the limit of "
                f"{self.max_new_tokens} ({_setting('max_new_tokens')}); ask for fewer"
            )
        if settings.perturb.n_draws > self.max_draws:
            raise VepoInputError(
                f"{settings.perturb.n_draws} counterfactual draws K is more than the limit of "
                f"{self.max_draws} ({_setting('max_draws')}); use fewer draws"
            )

    def check_group(self, n_responses: int) -> None:
        """A group of 2 to max_group responses (advantages need two to compare)."""
        if isinstance(n_responses, bool) or not isinstance(n_responses, int) or n_responses < 2:
            raise VepoInputError(
                f"a group needs at least 2 responses (GRPO compares them), got {n_responses!r}"
            )
        if n_responses > self.max_group:
            raise VepoInputError(
                f"a group of {n_responses} responses is more than the limit of "
                f"{self.max_group} ({_setting('max_group')}); sample fewer"
            )

    def check_image(self, n_elements: int, n_views: int) -> None:
        """The processed image tensors of all views within max_image_elements."""
        total = n_elements * n_views
        if total > self.max_image_elements:
            raise VepoInputError(
                f"the image is {n_elements:,} processed elements per view x {n_views} views "
                f"= {total:,}, more than the limit of {self.max_image_elements:,} "
                f"({_setting('max_image_elements')}); use fewer draws K or a smaller image"
            )

    def deadline(self) -> Deadline:
        """A clock started now, for `time_budget_s`."""
        return Deadline(self.time_budget_s)


@dataclass(frozen=True)
class CacheSettings:
    """Bounds of the shared model cache (app.py: --cache-max-models, --cache-max-gb)."""

    max_models: int = 4
    """Most models kept loaded at once (the least recently used one goes first)."""
    max_gb: float | None = None
    """Most GiB of weights kept loaded (unset: half the memory of the device the model is
    on, the RAM on CPU)."""

    def __post_init__(self) -> None:
        n = self.max_models
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise VepoInputError(f"CacheSettings.max_models={n!r} must be an int >= 1")
        gb = self.max_gb
        if gb is not None and (
            isinstance(gb, bool) or not isinstance(gb, int | float) or not 0 < gb < float("inf")
        ):
            raise VepoInputError(f"CacheSettings.max_gb={gb!r} must be a number > 0 (or unset)")


def check_context(n_prompt: int, n_response: int, context: int | None, generating: bool) -> None:
    """Prompt plus response tokens must fit the model's context (None: not known)."""
    if context is None or n_prompt + n_response <= context:
        return
    room = max(0, context - n_prompt)
    if generating:
        raise VepoInputError(
            f"the prompt is {n_prompt} tokens (image and question) and max new tokens is "
            f"{n_response}: more than the model's context of {context} tokens. Lower max "
            f"new tokens to at most {room}, or shorten the question"
        )
    raise VepoInputError(
        f"the prompt is {n_prompt} tokens and the pasted response {n_response}: more than "
        f"the model's context of {context} tokens, past which its numbers mean nothing. "
        f"Shorten the response to at most {room} tokens (or the question)"
    )


def check_unicode(name: str, text: str) -> None:
    """A clear error for text that is not valid Unicode (a lone surrogate, from a
    broken copy-paste or a JSON "\\ud800" escape): no tokenizer can encode it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        char = text[error.start]
        raise VepoInputError(
            f"the {name} holds a lone surrogate U+{ord(char):04X} at character "
            f"{error.start}, which is not valid Unicode text; remove it (or paste the text "
            "again from its source)"
        ) from None


FLAG_PREFIX = "limit_"
"""Prefix of the limits' flags (`--limit-max-question-chars`, ...) on the analyze
command and app.py (`settings.add_flags(..., prefix=FLAG_PREFIX)`)."""


def _setting(name: str) -> str:
    """How a user names a limit: the field, and its flag on the CLI and app.py."""
    return f"RequestLimits.{name}, flag --{(FLAG_PREFIX + name).replace('_', '-')}"


def _check_length(name: str, text: str, limit: int, setting: str) -> None:
    if len(text) > limit:
        raise VepoInputError(
            f"the {name} is {len(text):,} characters, more than the limit of {limit:,} "
            f"({_setting(setting)}); shorten it"
        )


class Deadline:
    """`check(stage)` raises once `budget_s` seconds have passed since it was made."""

    def __init__(self, budget_s: float, clock=time.monotonic) -> None:
        self.budget_s = float(budget_s)
        self._clock = clock
        self._start = clock()

    def check(self, stage: str) -> None:
        if self.budget_s <= 0:
            return
        elapsed = self._clock() - self._start
        if elapsed > self.budget_s:
            raise VepoInputError(
                f"the analysis ran past its time budget of {self.budget_s:g} s "
                f"({_setting('time_budget_s')}) before {stage}, after {elapsed:.1f} s; use "
                "fewer draws K, fewer new tokens or a smaller image"
            )
