"""GRPO math: group-normalised advantages, the k3 KL penalty and the per-token loss.

Pure tensor functions (tensors in, tensors out): no model, no optimizer. The clipped
policy term is `scoring.policy_loss`, the same function every part of the project uses;
this module adds what GRPO needs around it.

Shapes: N = prompts x G sequences of a rollout batch, T response positions.
"""

from __future__ import annotations

import torch

from vepo_viz.scoring import policy_loss

ADV_EPS = 1e-6
"""Added to a group's reward std before dividing (as the GRPO/TRL/EasyR1 code does): a group
whose rewards are all equal gets advantage 0, not NaN."""

KL_LOG_RATIO_MAX = 20.0
"""|log pi_ref - log pi| is clamped to this before exp in the k3 KL, so one token whose
probability collapsed cannot overflow float32."""


def group_advantages(rewards: torch.Tensor, group_size: int, norm: str = "std") -> torch.Tensor:
    """Advantage of each response relative to the other responses to the same prompt.

    Args:
        rewards: (N,) float, N = n_prompts * group_size, prompt-major (the G responses of
            prompt 0 first).
        group_size: G >= 2.
        norm: "std": (r - mean_g) / (std_g + ADV_EPS), std unbiased (GRPO);
            "none": r - mean_g (Dr. GRPO).

    Returns:
        (N,) float32.
    """
    if rewards.dim() != 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards must be (n_prompts * group_size,) = multiple of {group_size}, "
            f"got shape {tuple(rewards.shape)}"
        )
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    if norm not in ("std", "none"):
        raise ValueError(f"norm must be 'std' or 'none', got {norm!r}")
    grouped = rewards.double().view(-1, group_size)  # (P, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # (P, G)
    if norm == "std":
        centred = centred / (grouped.std(dim=1, keepdim=True) + ADV_EPS)
    return centred.reshape(-1).float()  # (N,)


def k3_kl(logp: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) for tokens sampled from pi: (N, T).

    r = log pi_ref - log pi (clamped to +-KL_LOG_RATIO_MAX); k3 = exp(r) - r - 1 >= 0, as in
    the GRPO paper. Differentiable in `logp`; 0 (and zero gradient) where mask is False.
    """
    r = torch.where(mask, logp_ref.detach() - logp, 0.0)  # masked before exp
    r = r.clamp(-KL_LOG_RATIO_MAX, KL_LOG_RATIO_MAX)
    return torch.where(mask, torch.expm1(r) - r, 0.0)


def grpo_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    selected: torch.Tensor,
    *,
    mode: str = "mask",
    weight_lambda: float = 1.0,
    clip_eps: float = 0.2,
    clip_eps_high: float = 0.2,
    logp_ref: torch.Tensor | None = None,
    kl_beta: float = 0.0,
    n_active_total: float | None = None,
    n_valid_total: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one micro-batch: clipped policy term on the selected tokens + beta * KL.

    The policy term is `scoring.policy_loss` (token-level mean over the active tokens:
    the selected ones in "mask" mode, all valid ones in "weight" mode); the KL term is the
    mean k3 over all valid tokens, selected or not (the penalty keeps the whole response
    near the reference).

    With gradient accumulation, pass the whole rollout batch's token counts as
    n_active_total / n_valid_total: each micro-batch's means are then rescaled so that the
    summed micro-batch losses equal the loss of the whole batch at once (a token-level
    mean over the batch, not a mean of micro-batch means).

    Args:
        logp_new: (n, T) log-probs of the sampled tokens under the policy being updated.
        logp_old: (n, T) the same under the rollout policy (constant).
        advantages: (n,) per response.
        mask: (n, T) bool, valid response tokens; selected: (n, T) bool, tokens trained on.
        logp_ref: (n, T) log-probs under the frozen reference, needed when kl_beta > 0.

    Returns:
        (loss, metrics): metrics has pg_loss, kl (mean k3 over valid tokens), the
        policy_loss metrics (clip_fraction, ratio_mean, approx_kl, n_valid, n_selected,
        n_active, selected_fraction) and loss.
    """
    pg, metrics = policy_loss(
        logp_new,
        logp_old,
        advantages,
        mask,
        selected,
        mode=mode,
        weight_lambda=weight_lambda,
        clip_eps=clip_eps,
        clip_eps_high=clip_eps_high,
    )
    n_active, n_valid = metrics["n_active"], metrics["n_valid"]
    if n_active_total is not None and n_active_total > 0:
        pg = pg * (n_active / n_active_total)
    loss = pg
    kl_value = 0.0
    if kl_beta > 0:
        if logp_ref is None:
            raise ValueError("kl_beta > 0 needs logp_ref, the reference model's log-probs")
        kl_sum = k3_kl(logp_new, logp_ref, mask).sum()
        kl_mean = kl_sum / max(n_valid, 1.0)
        kl_value = float(kl_mean.detach())
        denom = n_valid_total if n_valid_total else max(n_valid, 1.0)
        loss = loss + kl_beta * kl_sum / denom
    metrics = {
        **metrics,
        "pg_loss": float(pg.detach()),
        "kl": kl_value,
        "loss": float(loss.detach()),
    }
    return loss, metrics


@torch.no_grad()
def token_entropy(
    logits: torch.Tensor, temperature: float = 1.0, chunk_rows: int = 64
) -> torch.Tensor:
    """Entropy of softmax(logits / tau) per position, chunk by chunk in float32: (B, T).

    What the entropy-only rule needs when no counterfactual pass runs (equal to
    `scoring.token_stats(...).entropy`, at a third of its cost). logits: (B, T, V).
    """
    B, T, V = logits.shape
    flat = logits.reshape(B * T, V)  # (N, V)
    out = torch.empty(B * T, dtype=torch.float32, device=logits.device)
    for start in range(0, B * T, chunk_rows):
        z = flat[start : start + chunk_rows].float() / temperature  # (n, V)
        logp = torch.log_softmax(z, dim=-1)
        out[start : start + chunk_rows] = -(logp.exp() * logp).sum(-1)
    return out.view(B, T).clamp_(min=0.0)
