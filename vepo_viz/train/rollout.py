"""The three parts of a GRPO step over small dataclasses: rollout, score pass, update.

    episodes = rollout(policy, prompts, cfg, step)            # G sampled responses per prompt
    batch = RolloutBatch.build(policy, episodes, cfg)        # micro-batches, advantages
    signals = score_pass(policy, batch, cfg, step)           # no grad: logp_old, H, JSD, ...
    selection = select_for_step(cfg, signals, generator)     # selection.py (pure)
    metrics = update(policy, optimizer, batch, signals, selection, cfg)

The policy is anything with encode / response_logits / counterfactual_inputs / generate /
decode / parameters (train.policy.VLMPolicy, or a fake in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vepo_viz.scoring import TokenStats, average_stats, sampled_token_logprobs, token_stats
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.data import TaskPrompt
from vepo_viz.train.grpo import group_advantages, grpo_loss, token_entropy
from vepo_viz.train.policy import derive_seed, make_generator
from vepo_viz.train.selection import Selection, TokenSignals

_STATS_FIELDS = ("entropy", "entropy_noisy", "jsd", "kl")


@dataclass(frozen=True)
class Episode:
    """One sampled response to one prompt, with its reward."""

    prompt: TaskPrompt
    group: int
    """Index of the prompt within the step (the G responses of a prompt share it)."""
    response_ids: tuple[int, ...]
    text: str
    reward: float
    correct: bool
    well_formed: bool
    kinds: tuple[str, ...] | None = None
    """Kind of each response token (suite prompts whose response follows the template)."""


def rollout(policy, prompts: list[TaskPrompt], cfg: TrainConfig, step: int) -> list[Episode]:
    """cfg.group_size sampled responses per prompt, scored by the task verifier."""
    responses = policy.generate(
        prompts,
        n_per_prompt=cfg.group_size,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=derive_seed(cfg.seed, "rollout", step),
    )
    episodes = []
    for i, ids in enumerate(responses):
        prompt = prompts[i // cfg.group_size]
        text = policy.decode(ids)
        reward, correct, well_formed = prompt.reward(text)
        kinds = policy.token_kinds(prompt, ids) if hasattr(policy, "token_kinds") else None
        episodes.append(
            Episode(
                prompt, i // cfg.group_size, tuple(ids), text, reward, correct, well_formed, kinds
            )
        )
    return episodes


@dataclass(eq=False)
class RolloutBatch:
    """A step's episodes as micro-batches sharing one response length T."""

    episodes: list[Episode]
    micro_batches: list
    """SequenceBatch per micro-batch (rows in episode order)."""
    advantages: torch.Tensor
    """(N,) float32 group-normalised advantages."""
    rewards: torch.Tensor
    """(N,) float32."""

    @classmethod
    def build(cls, policy, episodes: list[Episode], cfg: TrainConfig) -> RolloutBatch:
        T = max(1, max(len(e.response_ids) for e in episodes))
        micro = []
        for start in range(0, len(episodes), cfg.micro_batch_size):
            chunk = episodes[start : start + cfg.micro_batch_size]
            micro.append(
                policy.encode([e.prompt for e in chunk], [list(e.response_ids) for e in chunk], T)
            )
        rewards = torch.tensor([e.reward for e in episodes], dtype=torch.float32)
        advantages = group_advantages(rewards, cfg.group_size, cfg.adv_norm)
        return cls(episodes, micro, advantages, rewards)

    @property
    def mask(self) -> torch.Tensor:
        """(N, T) bool."""
        return torch.cat([mb.mask.cpu() for mb in self.micro_batches])

    def rows(self, index: int) -> slice:
        """Rows of micro-batch `index` in the (N, ...) tensors."""
        start = sum(mb.n_rows for mb in self.micro_batches[:index])
        return slice(start, start + self.micro_batches[index].n_rows)


@torch.no_grad()
def score_pass(
    policy, batch: RolloutBatch, cfg: TrainConfig, step: int, counterfactual: bool
) -> tuple[TokenSignals, torch.Tensor | None]:
    """Per-token signals of the rollout policy, once per step, without gradient.

    One clean teacher-forced pass per micro-batch gives logp_old and the entropy; with
    `counterfactual`, cfg.n_draws more passes with fresh counterfactual views (a new
    generator per micro-batch and draw) give the clean-vs-view statistics (token_stats)
    and the views' sampled-token log-probs (VPPO). With kl_beta > 0 the reference
    model's log-probs come back as the second value.
    """
    logp_old, entropy, logp_noisy, logp_ref = [], [], [], []
    stats_parts = []
    for index, mb in enumerate(batch.micro_batches):
        clean = policy.response_logits(mb)  # (n, T, V)
        logp_old.append(sampled_token_logprobs(clean, mb.response_ids, cfg.temperature).cpu())
        if counterfactual:
            draws, noisy_logps = [], []
            for draw in range(cfg.n_draws):
                gen = make_generator(derive_seed(cfg.seed, "view", step, index, draw))
                view = policy.counterfactual_inputs(
                    mb, cfg.perturb_mode, sigma=cfg.sigma, generator=gen
                )
                noisy = policy.response_logits(mb, view)  # (n, T, V)
                draws.append(token_stats(clean, noisy, cfg.temperature))
                noisy_logps.append(sampled_token_logprobs(noisy, mb.response_ids, cfg.temperature))
                del noisy
            stats = average_stats(draws).to("cpu")
            stats_parts.append(stats)
            entropy.append(stats.entropy)
            logp_noisy.append(torch.stack(noisy_logps).mean(0).cpu())  # (K, n, T) -> (n, T)
        else:
            entropy.append(token_entropy(clean, cfg.temperature).cpu())
        if cfg.kl_beta > 0:
            ref = policy.reference_logits(mb)
            logp_ref.append(sampled_token_logprobs(ref, mb.response_ids, cfg.temperature).cpu())
        del clean

    stats = None
    if stats_parts:
        stats = TokenStats(
            *(torch.cat([getattr(s, f) for s in stats_parts]) for f in _STATS_FIELDS)
        )
    signals = TokenSignals(
        mask=batch.mask,
        logp_old=torch.cat(logp_old),
        entropy=torch.cat(entropy),
        stats=stats,
        logp_noisy=torch.cat(logp_noisy) if logp_noisy else None,
    )
    return signals, (torch.cat(logp_ref) if logp_ref else None)


def update(
    policy,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    signals: TokenSignals,
    selection: Selection,
    cfg: TrainConfig,
    logp_ref: torch.Tensor | None = None,
) -> dict[str, float]:
    """cfg.ppo_epochs optimizer steps on the batch, gradients accumulated over micro-batches.

    The micro-batch losses are rescaled by the batch's token counts (see `grpo_loss`), so
    the gradient equals that of the whole batch in one pass, whatever micro_batch_size is.
    """
    advantages = batch.advantages
    if selection.advantage_scale is not None:
        advantages = advantages * selection.advantage_scale
    mask, selected = signals.mask, selection.selected & signals.mask
    n_valid_total = float(mask.sum())
    n_active_total = float(selected.sum()) if cfg.loss_mode == "mask" else n_valid_total
    metrics: dict[str, float] = {}
    policy.train(True)
    for _epoch in range(cfg.ppo_epochs):
        sums: dict[str, float] = {}
        for index, mb in enumerate(batch.micro_batches):
            rows = batch.rows(index)
            logits = policy.response_logits(mb)  # (n, T, V), with grad
            logp_new = sampled_token_logprobs(logits, mb.response_ids, cfg.temperature)
            device = logp_new.device
            loss, m = grpo_loss(
                logp_new,
                signals.logp_old[rows].to(device),
                advantages[rows].to(device),
                mask[rows].to(device),
                selected[rows].to(device),
                mode=cfg.loss_mode,
                weight_lambda=cfg.weight_lambda,
                clip_eps=cfg.clip_eps,
                clip_eps_high=cfg.clip_eps_high,
                logp_ref=logp_ref[rows].to(device) if logp_ref is not None else None,
                kl_beta=cfg.kl_beta,
                n_active_total=n_active_total,
                n_valid_total=n_valid_total,
            )
            loss.backward()
            # Token-weighted sums of the per-micro-batch means.
            for key in ("clip_fraction", "ratio_mean", "approx_kl"):
                sums[key] = sums.get(key, 0.0) + m[key] * m["n_active"]
            sums["kl"] = sums.get("kl", 0.0) + m["kl"] * m["n_valid"]
            sums["loss"] = sums.get("loss", 0.0) + m["loss"]
            sums["pg_loss"] = sums.get("pg_loss", 0.0) + m["pg_loss"]
            del logits, logp_new, loss
        params = policy.parameters()
        if cfg.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        else:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in params if p.grad is not None])
            )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        metrics = {
            "loss": sums["loss"],
            "pg_loss": sums["pg_loss"],
            "kl": sums["kl"] / max(n_valid_total, 1.0),
            "clip_fraction": sums["clip_fraction"] / max(n_active_total, 1.0),
            "ratio_mean": sums["ratio_mean"] / max(n_active_total, 1.0),
            "approx_kl": sums["approx_kl"] / max(n_active_total, 1.0),
            "grad_norm": float(grad_norm),
        }
    policy.train(False)
    metrics.update(
        n_tokens=n_valid_total,
        n_selected=float(selected.sum()),
        selected_fraction=float(selected.sum()) / max(n_valid_total, 1.0),
    )
    return metrics
