"""Train the embedded tiny VLM on the task suite (supervised, next-token loss on answers).

    vepo-viz tiny-train --out runs/tiny --steps 11000 --threads 2
    python -m vepo_viz.tiny.train --out runs/tiny --steps 11000 --threads 2

Deterministic: the data of step s is a pure function of s, so a resumed run sees exactly
the batches an uninterrupted one would. Checkpoints (model + optimizer + step) every
`ckpt_every` steps in out/ckpt.pt; the final model is saved with `save_pretrained` in
out/final, loadable like any hub model.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from vepo_viz.tasks.draw import SHAPES
from vepo_viz.tiny.build import TinyConfig, build_model, build_processor, build_tokenizer
from vepo_viz.tiny.data import IGNORE, collate_sft, train_example
from vepo_viz.tiny.recipe import TrainConfig, add_arguments


def cell_pixels(pixel_values: torch.Tensor, grid_thw: torch.Tensor, size: int = 14) -> torch.Tensor:
    """Each merged cell's pixels (first frame), area-downsampled to size x size: (n, 3*size^2).

    pixel_values: (N, C*T*P*P) flat patches in merge-window order, as the Qwen2-VL image
    processor returns them; 2 x 2 patches form one merged cell (one image token).
    """
    n_patch, _ = pixel_values.shape
    x = pixel_values.reshape(n_patch // 4, 2, 2, 3, 2, 14, 14)[
        :, :, :, :, 0
    ]  # (n, mh, mw, C, P, P)
    x = x.permute(0, 3, 1, 4, 2, 5).reshape(n_patch // 4, 3, 28, 28)  # (n, C, 28, 28)
    return torch.nn.functional.adaptive_avg_pool2d(x, size).flatten(1)  # (n, 3*size*size)


CELL_SHAPES = (*SHAPES, "bar", "box")


def cell_targets(examples) -> dict[str, torch.Tensor]:
    """Per-cell labels of a batch from the examples' meta["cells"], one row per image token.

    colour (6 + none), shape (4 + bar + box + none), the tens (0: none) and units (10: none)
    digits of a box's number, and a bar's height in units of 100 px (NaN: no bar).
    """
    from vepo_viz.tasks.draw import COLORS

    colours = list(COLORS)
    rows = {"colour": [], "shape": [], "tens": [], "units": [], "height": []}
    for ex in examples:
        for c in ex.meta["cells"]:
            number = c and c["number"]
            rows["colour"].append(colours.index(c["color"]) if c else len(colours))
            rows["shape"].append(CELL_SHAPES.index(c["shape"]) if c else len(CELL_SHAPES))
            rows["tens"].append(number // 10 if number is not None else 0)
            rows["units"].append(number % 10 if number is not None else 10)
            rows["height"].append(c["height"] / 100 if c and c["height"] else float("nan"))
    out = {k: torch.tensor(v) for k, v in rows.items() if k != "height"}
    out["height"] = torch.tensor(rows["height"], dtype=torch.float32)
    return out


class CellHeads(torch.nn.Module):
    """Linear read-outs of each image token (one 28 px cell): what the cell holds, and its
    pixels at 2 px resolution. The stand-in for a pretrained vision encoder's supervision;
    the heads are not part of the saved model."""

    def __init__(self, dim: int):
        super().__init__()
        from vepo_viz.tasks.draw import COLORS

        self.colour = torch.nn.Linear(dim, len(COLORS) + 1)
        self.shape = torch.nn.Linear(dim, len(CELL_SHAPES) + 1)
        self.tens = torch.nn.Linear(dim, 10)
        self.units = torch.nn.Linear(dim, 11)
        self.height = torch.nn.Linear(dim, 1)
        self.pixels = torch.nn.Linear(dim, 3 * 14 * 14)

    def loss(self, feats: torch.Tensor, targets: dict, pixel_target: torch.Tensor) -> torch.Tensor:
        """feats: (n_cells, D) merger outputs; targets from cell_targets; pixel_target from
        cell_pixels."""
        ce = torch.nn.functional.cross_entropy
        loss = sum(ce(getattr(self, k)(feats), targets[k]) for k in ("colour", "shape"))
        loss = (
            loss + ce(self.tens(feats), targets["tens"]) + ce(self.units(feats), targets["units"])
        )
        bar = ~targets["height"].isnan()  # (n,)
        if bar.any():
            pred = self.height(feats[bar]).squeeze(-1)
            loss = loss + 10 * torch.nn.functional.mse_loss(pred, targets["height"][bar])
        return loss + torch.nn.functional.mse_loss(self.pixels(feats), pixel_target)


class PositionHeads(torch.nn.Module):
    """Linear read-outs of each image token's row and column (0-3) from the language
    model's hidden states. The vision tower sees only relative positions, so on a plain
    background it cannot tell columns apart; the causal language model can (for
    instance, a token in column 0 finds no token one column to its left in its row), but
    without this loss it did not (model card). Not part of the saved model."""

    def __init__(self, dim: int):
        super().__init__()
        from vepo_viz.tasks.base import GRID

        self.grid = GRID
        self.row = torch.nn.Linear(dim, GRID)
        self.col = torch.nn.Linear(dim, GRID)

    def targets(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, col) of n image tokens, images of GRID x GRID tokens in row-major order."""
        idx = torch.arange(n) % (self.grid * self.grid)
        return idx // self.grid, idx % self.grid

    def loss(self, hidden: torch.Tensor) -> tuple[torch.Tensor, float]:
        """hidden: (n_image_tokens, D). Returns (loss, column accuracy)."""
        row, col = self.targets(hidden.shape[0])
        col_logits = self.col(hidden)
        ce = torch.nn.functional.cross_entropy
        loss = ce(self.row(hidden), row) + ce(col_logits, col)
        return loss, float((col_logits.argmax(-1) == col).float().mean())


class LayerCapture:
    """Keeps the output of one decoder layer of the language model (the latest forward)."""

    def __init__(self, model, n_layers: int):
        self.output = None
        layer = model.model.language_model.layers[n_layers - 1]
        self.handle = layer.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.output = output[0] if isinstance(output, tuple) else output  # (B, L, D)

    def image_states(self, input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
        """(n_image_tokens, D): the captured states at the image tokens, in order."""
        return self.output[input_ids == image_token_id]


def pretrain_vision(model, heads: CellHeads, processor, cfg: TrainConfig) -> list[float]:
    """Stage 1: train the vision tower alone on the per-cell labels (CellHeads), before any
    text. The features then carry colour, shape, digits and bar heights when the language
    model starts reading them."""
    from vepo_viz.tiny.data import _suite_example

    visual = model.model.visual
    opt = torch.optim.AdamW([*visual.parameters(), *heads.parameters()], lr=cfg.vision_pretrain_lr)
    losses = []
    span = (cfg.difficulty_lo, cfg.difficulty_hi)
    for step in tqdm(range(cfg.vision_pretrain_steps), desc="vision stage"):
        examples = [
            _suite_example(2 * 10**7 + step * cfg.batch_size + i, span)
            for i in range(cfg.batch_size)
        ]
        px = processor.image_processor([ex.image for ex in examples], return_tensors="pt")
        out = visual(px["pixel_values"], grid_thw=px["image_grid_thw"])
        feats = getattr(out, "pooler_output", out)  # (B * 16, D): one row per merged cell
        target = cell_pixels(px["pixel_values"], px["image_grid_thw"])  # (B * 16, 588)
        loss = heads.loss(feats, cell_targets(examples), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def sft_loss(model, batch) -> torch.Tensor:
    logits = model(**batch.inputs).logits[:, :-1]  # (B, L-1, V)
    labels = batch.labels[:, 1:]  # (B, L-1)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE
    )


class FeatureNormPenalty:
    """Records the vision tower's output during a forward: pop() returns the features (for
    the per-cell losses), their mean norm, and a penalty on norms above a cap."""

    def __init__(self, model, norm_max: float):
        self.norm_max, self.features = norm_max, []
        self.handle = model.model.visual.merger.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.features.append(output)  # (n_image_tokens, D)

    def pop(self) -> tuple[torch.Tensor, float, torch.Tensor]:
        """(penalty, mean feature norm, features) of the forwards since the last pop."""
        feats = torch.cat(self.features)  # (n_image_tokens, D)
        self.features = []
        norms = feats.float().norm(dim=-1)  # (n,)
        penalty = torch.relu(norms - self.norm_max).pow(2).mean()
        return penalty, float(norms.detach().mean()), feats


def _drop_metrics_after(path: Path, step: int) -> None:
    """Forget the metrics of steps a killed run did after its last checkpoint: they are
    about to be redone, and would otherwise appear twice."""
    if path.exists():
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(x for x in lines if json.loads(x)["step"] <= step))


def train(cfg: TrainConfig, tiny: TinyConfig | None = None) -> Path:
    """Run (or resume) the recipe; returns the folder of the saved final model."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "ckpt.pt"
    processor = _processor(cfg, out, tiny or TinyConfig())
    model = build_model(processor.tokenizer, tiny or TinyConfig(), seed=cfg.seed)
    n_layers = model.config.text_config.num_hidden_layers
    if cfg.position_loss_coef and not 1 <= cfg.position_layer <= n_layers:
        raise ValueError(f"position_layer must be in 1..{n_layers} (the language model's layers)")
    heads = CellHeads(model.config.text_config.hidden_size)
    pos_heads = PositionHeads(model.config.text_config.hidden_size)
    opt = _optimizer(cfg, model, heads, pos_heads)
    start, elapsed = _start(cfg, out, model, heads, pos_heads, opt, processor)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log = (out / "metrics.jsonl").open("a")
    model.train()
    penalty = FeatureNormPenalty(model, cfg.feature_norm_max)
    capture = LayerCapture(model, cfg.position_layer)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="tiny-train")
    t0 = time.time() - elapsed
    for step in bar:
        rec = _sft_step(cfg, step, model, heads, pos_heads, opt, processor, penalty, capture)
        bar.set_postfix(loss=f"{rec['loss']:.3f}")
        rec["elapsed_s"] = time.time() - t0
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            from vepo_viz.tiny.evaluate import accuracy

            model.eval()
            penalty.handle.remove()
            acc = accuracy(model, processor, n_per_family=cfg.n_eval_per_family)
            model.train()
            penalty = FeatureNormPenalty(model, cfg.feature_norm_max)
            rec["heldout_acc"] = acc
            tqdm.write(f"step {step + 1}: held-out accuracy {json.dumps(acc)}")
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            state = {"model": model, "heads": heads, "pos_heads": pos_heads, "optimizer": opt}
            torch.save(
                {
                    **{k: v.state_dict() for k, v in state.items()},
                    "step": step + 1,
                    "elapsed": time.time() - t0,
                },
                ckpt_path,
            )
    final = out / "final"
    model.save_pretrained(final)
    processor.save_pretrained(final)
    (final / "train_config.json").write_text(
        json.dumps({**asdict(cfg), "wall_s": time.time() - t0}, indent=2)
    )
    return final


def _processor(cfg: TrainConfig, out: Path, tiny: TinyConfig):
    """The run's processor: its own (resume), the init run's, or a new one."""
    init = Path(cfg.init_from) if cfg.init_from else None
    if init and not (init / "ckpt.pt").exists():
        raise FileNotFoundError(f"--init-from {init}: no ckpt.pt there")
    if init and not (out / "processor").exists():
        shutil.copytree(init / "processor", out / "processor")
    if (out / "processor").exists():
        from vepo_viz.models.processors import Qwen2VLProcessorNoVideo

        return Qwen2VLProcessorNoVideo.from_pretrained(out / "processor")
    processor = build_processor(build_tokenizer(tiny), tiny)
    processor.save_pretrained(out / "processor")
    return processor


def _optimizer(cfg: TrainConfig, model, heads, pos_heads) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
            {"params": [*heads.parameters(), *pos_heads.parameters()], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )


def _start(cfg: TrainConfig, out: Path, model, heads, pos_heads, opt, processor):
    """(first step, elapsed seconds): resume the run, start from --init-from's weights, or
    run the vision stage of a new run."""
    ckpt_path = out / "ckpt.pt"
    init = Path(cfg.init_from) if cfg.init_from else None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(state["model"])
        heads.load_state_dict(state["heads"])
        pos_heads.load_state_dict(state["pos_heads"])
        opt.load_state_dict(state["optimizer"])
        print(f"resumed from {ckpt_path} at step {state['step']}")
        _drop_metrics_after(out / "metrics.jsonl", state["step"])
        return state["step"], state.get("elapsed", 0.0)
    if init:
        state = torch.load(init / "ckpt.pt", weights_only=False)
        model.load_state_dict(state["model"])
        heads.load_state_dict(state["heads"])
        if "pos_heads" in state:  # runs before the position losses have none
            pos_heads.load_state_dict(state["pos_heads"])
        print(f"starting from the weights of {init} (its step {state['step']})")
    elif cfg.vision_pretrain_steps:
        stage1 = pretrain_vision(model, heads, processor, cfg)
        (out / "vision_stage.json").write_text(
            json.dumps({"loss_first": stage1[0], "loss_last": stage1[-1]})
        )
    return 0, 0.0


def _sft_step(cfg, step, model, heads, pos_heads, opt, processor, penalty, capture) -> dict:
    """One optimizer step of the language stage; returns its metrics record."""
    idx0 = step * cfg.batch_size
    examples = [
        train_example(idx0 + i, (cfg.difficulty_lo, cfg.difficulty_hi))
        for i in range(cfg.batch_size)
    ]
    batch = collate_sft(processor, examples)
    for g in opt.param_groups:
        g["lr"] = lr_at(cfg, step)
    loss = sft_loss(model, batch)
    norm_penalty, feature_norm, feats = penalty.pop()
    total = loss + cfg.feature_norm_coef * norm_penalty
    if cfg.cell_loss_coef:
        pv, thw = batch.inputs["pixel_values"], batch.inputs["image_grid_thw"]
        cell_loss = heads.loss(feats, cell_targets(examples), cell_pixels(pv, thw))
        total = total + cfg.cell_loss_coef * cell_loss
    pos_loss, col_acc = None, None
    if cfg.position_loss_coef:
        states = capture.image_states(batch.inputs["input_ids"], model.config.image_token_id)
        pos_loss, col_acc = pos_heads.loss(states)
        total = total + cfg.position_loss_coef * pos_loss
    total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(
        [*model.parameters(), *heads.parameters(), *pos_heads.parameters()], 1.0
    )
    opt.step()
    opt.zero_grad(set_to_none=True)
    return {
        "step": step + 1,
        "loss": loss.item(),
        "cell_loss": float(cell_loss.detach()) if cfg.cell_loss_coef else None,
        "position_loss": float(pos_loss) if pos_loss is not None else None,
        "column_acc": col_acc,
        "grad_norm": float(grad_norm),
        "lr": lr_at(cfg, step),
        "feature_norm": feature_norm,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    final = train(TrainConfig(**vars(args)))
    print(f"saved {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def export_checkpoint(out: str | Path, dest: str | Path | None = None) -> Path:
    """Save the latest checkpoint of a run (finished or not) as a from_pretrained folder."""
    from vepo_viz.models.processors import Qwen2VLProcessorNoVideo

    out = Path(out)
    cfg = TrainConfig(**json.loads((out / "config.json").read_text()))
    processor = Qwen2VLProcessorNoVideo.from_pretrained(out / "processor")
    model = build_model(processor.tokenizer, TinyConfig(), seed=cfg.seed)
    state = torch.load(out / "ckpt.pt", weights_only=False)
    model.load_state_dict(state["model"])
    dest = Path(dest) if dest else out / f"step{state['step']}"
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    info = {**asdict(cfg), "steps_trained": state["step"], "wall_s": state.get("elapsed", 0.0)}
    (dest / "train_config.json").write_text(json.dumps(info, indent=2))
    return dest
