"""Run by tests/test_trl_distributed.py under `accelerate launch --num_processes N --cpu`:
a few VEPOGRPOTrainer steps with scope="batch" on a tiny model; every process writes, per
generation step, its rows' scores, mask and selection to OUT/rank<r>.pt.

    trl_batch_scope.py MODEL OUT [vepo|rank_offset]

"rank_offset" selects with a rule registered here only: every token of rank 0 scores
above every token of rank 1 (1 + position ramp vs 0 + ramp), so the global cut and the
per-process cuts provably differ (the test says why)."""

import os
import sys
from pathlib import Path

import torch
from datasets import Dataset

from tests.fake import draw_scene
from vepo_viz.models import load_model
from vepo_viz.train.rules import RULES, Selection, SelectionRule
from vepo_viz.train.trl_plugin import VEPOGRPOConfig, VEPOGRPOTrainer


def _rank_offset(cfg, signals, generator) -> Selection:
    mask = signals.mask
    positions = torch.arange(1, mask.shape[1] + 1, dtype=torch.float32) / (mask.shape[1] + 1)
    offset = 1.0 if int(os.environ.get("RANK", "0")) == 0 else 0.0
    scores = (offset + 0.5 * positions).expand(mask.shape) * mask
    return Selection(selected=mask.clone(), scores=scores)


RULES.register(
    SelectionRule(
        name="rank_offset",
        description="test only: rank 0's tokens above rank 1's",
        select=_rank_offset,
    )
)


def main(model_dir: str, out_dir: str, selection: str = "vepo") -> None:
    vlm = load_model(model_dir, device="cpu")
    questions = ["What color is it?", "How many shapes?", "Where is the square?", "Is it red?"]
    data = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": q}], "image": draw_scene()} for q in questions]
    )

    def reward(completions, **kwargs):
        return [float(len(set(c[0]["content"]))) for c in completions]

    args = VEPOGRPOConfig(
        output_dir=str(Path(out_dir) / "run"),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=10,
        max_steps=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
        selection=selection,
        scope="batch",
        ratio=0.3,
        logging_steps=1,
    )
    trainer = VEPOGRPOTrainer(
        model=vlm.model,
        reward_funcs=reward,
        args=args,
        train_dataset=data,
        processing_class=vlm.processor,
    )
    records = []
    original = trainer._generate_and_score_completions

    def recording(inputs):
        out = original(inputs)
        sel = trainer.last_selection
        records.append({k: sel[k] for k in ("step", "selected", "scores", "mask")})
        return out

    trainer._generate_and_score_completions = recording
    trainer.train()
    rank = trainer.accelerator.process_index
    torch.save(
        {"records": records, "world": trainer.accelerator.num_processes},
        Path(out_dir) / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
