"""Test helpers without a model: a small scene image and synthetic TokenAnalysis objects."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


def draw_scene(width: int = 96, height: int = 64) -> Image.Image:
    """A small RGB test image: a red square and a blue circle on white."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([8, 8, 8 + height // 2, 8 + height // 2], fill=(220, 30, 30))
    draw.ellipse([width // 2, height // 4, width // 2 + height // 2, height // 4 * 3], fill="blue")
    return image


def synthetic_analysis(n_tokens: int = 12, seed: int = 0, **overrides):
    """A TokenAnalysis with random but valid statistics, scored like the real pipeline."""
    from vepo_viz.results import TokenAnalysis
    from vepo_viz.scoring import ScoringConfig, score_response

    rng = np.random.default_rng(seed)
    words = ["The", " square", " is", " red", ",", " so", " x", " =", " 4", ".", " Yes", "!"]
    tokens = [words[i % len(words)] for i in range(n_tokens)]
    response = "".join(tokens)
    ends = np.cumsum([len(t) for t in tokens])
    offsets = np.stack([ends - [len(t) for t in tokens], ends], axis=1)
    entropy = rng.uniform(0, 3, n_tokens).astype(np.float32)
    entropy_noisy = (entropy + rng.normal(0, 0.3, n_tokens)).clip(0).astype(np.float32)
    jsd = rng.uniform(0, math.log(2) / 4, n_tokens).astype(np.float32)
    kl = (2 * jsd + rng.uniform(0, 0.1, n_tokens)).astype(np.float32)
    settings = {"score_type": "D", "alpha": 0.7, "ratio": 0.2, "scope": "response", "seed": 0}
    k = 3
    fields = dict(
        response=response,
        tokens=tokens,
        token_ids=np.arange(n_tokens) + 10,
        offsets=offsets,
        entropy=entropy,
        entropy_noisy=entropy_noisy,
        jsd=jsd,
        kl=kl,
        entropy_gap=entropy_noisy - entropy,
        entropy_noisy_std=np.zeros(n_tokens),
        jsd_std=np.zeros(n_tokens),
        kl_std=np.zeros(n_tokens),
        entropy_gap_std=np.zeros(n_tokens),
        logprob=-rng.uniform(0, 2, n_tokens),
        logprob_noisy=-rng.uniform(0, 2, n_tokens),
        top_ids=rng.integers(0, 100, (n_tokens, k)),
        top_tokens=[[f"t{j}" for j in range(k)] for _ in range(n_tokens)],
        top_probs=np.sort(rng.dirichlet(np.ones(k + 1), n_tokens)[:, :k], axis=1)[:, ::-1],
        top_probs_noisy=rng.dirichlet(np.ones(k + 1), n_tokens)[:, :k],
        question="What colour is the square?",
        model_id="synthetic",
        family="qwen2_vl",
        image_digest="sha256:" + "0" * 64,
        image_size=(96, 64),
        settings=settings,
        versions={"vepo_viz": "test"},
        timing={"total": 0.0},
    )
    scored = score_response(
        entropy=entropy,
        entropy_noisy=entropy_noisy,
        jsd=jsd,
        kl=kl,
        config=ScoringConfig(**settings),
    )
    fields.update(
        visual_sensitivity=scored.visual_sensitivity,
        scores=scored.scores,
        selected_vepo=scored.selected_vepo,
        selected_entropy=scored.selected_entropy,
        selection_share=scored.selection_share,
        draw_jaccard=scored.draw_jaccard,
    )
    fields.update(overrides)
    return TokenAnalysis(**fields)
