"""The embedded model's training recipe (TrainConfig) and its flags: torch-free, so
`vepo-viz tiny-train --help` starts at once (tiny/train.py runs the recipe)."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of the embedded model."""

    out: str = "runs/tiny"
    """Output folder: ckpt.pt, metrics.jsonl, final/ (the saved model)."""
    steps: int = 11000
    batch_size: int = 32
    lr: float = 1e-3
    """Peak learning rate (2e-3 grew the image features without bound: norm 112 after
    500 steps vs 48 at 1e-3, the start of the attention-sink failure described below)."""
    warmup: int = 150
    min_lr_frac: float = 0.05
    """Cosine decay down to min_lr_frac * lr."""
    weight_decay: float = 0.01
    seed: int = 0
    eval_every: int = 500
    n_eval_per_family: int = 40
    ckpt_every: int = 250
    difficulty_lo: float = 0.0
    difficulty_hi: float = 1.0
    threads: int = 0
    """torch threads (0: leave torch's default)."""
    init_from: str = ""
    """A previous run's folder to continue from instead of starting from scratch: its
    weights and cell heads (ckpt.pt) and its processor are taken, the optimizer, the step
    count and the learning-rate schedule start afresh, and the vision stage is skipped.
    This is how the released model was carried over a change of the suite (model card)."""
    vision_pretrain_steps: int = 1500
    """Stage 1: steps of per-cell supervision of the vision tower alone (CellHeads: colour,
    shape, digits, bar height, pixels), before any text. Without it the language model
    settles on ignoring the image before the vision features carry anything (measured: the
    colour of a single 24 px circle was still at chance after 300 SFT steps; with 100
    stage-1 steps first, it was read correctly within 25-125 steps)."""
    vision_pretrain_lr: float = 1e-3
    cell_loss_coef: float = 0.5
    """Weight of the per-cell losses (CellHeads) kept on during the language stage, so the
    image features do not forget what stage 1 taught them."""
    position_loss_coef: float = 0.5
    """Weight of the position losses (PositionHeads): the row and column of each image
    token, read linearly off the language model's residual stream after
    `position_layer` layers. Neither tower has absolute position embeddings, and a probe
    found no column in the image tokens without this loss (model card)."""
    position_layer: int = 2
    """How many language-model layers the position read-out sits after (1..n_layers)."""
    feature_norm_max: float = 4.0
    """Image-feature norm above which a penalty applies (about 2x the norm at init)."""
    feature_norm_coef: float = 0.0
    """Weight of an optional penalty mean(relu(||f|| - feature_norm_max)^2) (0: off, the
    recipe). With the image before the question, no vision stage and lr 2e-3, training blew
    the image features up into a huge constant (norm 2,500 after 2,000 steps: an attention
    sink) and the model ignored the image; the vision stage and lr 1e-3 avoid that, and
    the penalty, which also shrinks useful features, is left off. The mean feature norm is
    logged either way."""

    def __post_init__(self):
        if self.steps <= 0 or self.batch_size <= 0:
            raise ValueError("steps and batch_size must be positive")
        if not 0 <= self.difficulty_lo <= self.difficulty_hi <= 1:
            raise ValueError("need 0 <= difficulty_lo <= difficulty_hi <= 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, default in asdict(TrainConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
