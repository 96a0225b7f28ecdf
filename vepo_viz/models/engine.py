"""The engine: the one code path from (prompt, response, image) rows to per-token signals.

    rows -> clean states (captured during generation, else one teacher-forced pass)
         -> one teacher-forced pass per view kind, rows (and draws) batched
         -> the states that predict each response token (every layer's on request)
         -> one chunked walk through the output head: each chunk's logits once per pass,
            each log-softmax once, every full-vocabulary and sampled-token signal from
            them (never a (B, T, V) tensor); hidden-state signals from the states
         -> `Signals`: (B, T) clean signals and (K, B, T) per view

`analyze` (one row, its K draws and the noise-floor pass in one forward), `batch`, the
TRL plug-in (a generation batch) and the embedded model's evaluation all call it; none of
them runs the model or its output head itself (../shared/tools/layering.py counts that).

Extension points are registries: views are `perturb.MODES` (each with its kind and seed
rule), signals are `SIGNALS` here (each with its kind). A hidden-state signal registered
anywhere reaches every caller: `Signals.extra` carries it, the results store it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from vepo_viz import scoring
from vepo_viz.lazy import no_grad, torch
from vepo_viz.registry import Registry

CHUNK_ELEMENTS_CPU = 2**22
"""Output-head chunk on CPU, in (positions x vocabulary) elements: 16 MB of float32 logits
per pass (27 positions at V = 151,936), near cache size."""

CHUNK_ELEMENTS_ACCELERATOR = 2**26
"""Output-head chunk on GPUs and other accelerators: 256 MB of float32 per pass; large
chunks keep kernel launches few."""

EXTEND_WITH_ONES = ("attention_mask",)
EXTEND_WITH_ZEROS = ("mm_token_type_ids", "token_type_ids")
"""Per-token inputs besides input_ids that a processor may return and that must grow with
the response: the attention mask (1 = attend) and image/text type ids (0 = text)."""

HeadFn = Callable[["torch.Tensor"], "torch.Tensor"]
"""(n, D) hidden states -> (n, V) logits."""


# ---- the output head and its chunks -------------------------------------------------


def chunk_rows(vocab_size: int, device, rows: int | None = None) -> int:
    """Positions per output-head chunk: `rows` if given (> 0), else from the policy above."""
    if rows:
        return int(rows)
    kind = torch.device(device).type
    elements = CHUNK_ELEMENTS_CPU if kind == "cpu" else CHUNK_ELEMENTS_ACCELERATOR
    return max(1, elements // max(1, int(vocab_size)))


def output_head(model) -> HeadFn:
    """The model's output head as a function of hidden states, with its logit soft-capping
    (Gemma's final_logit_softcapping) applied: the one place that rule is written."""
    head = model.get_output_embeddings()
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    softcap = getattr(text_config, "final_logit_softcapping", None)
    if not softcap:
        return head
    return lambda hidden: torch.tanh(head(hidden) / softcap) * softcap


def vocab_size(model) -> int:
    """V, rows of the output head (may exceed the tokenizer's length, as in Qwen)."""
    return int(model.get_output_embeddings().weight.shape[0])


def head_vocab_size(head: HeadFn, hidden: torch.Tensor) -> int:
    """V read from one one-row head call: right where the weights are sharded (ZeRO-3
    holds an empty placeholder until a call gathers them), and the same call on every
    process."""
    return int(head(hidden.reshape(-1, hidden.shape[-1])[:1]).shape[-1])


# ---- clean states from generation ---------------------------------------------------


class GenerationCapture:
    """The output head's inputs while transformers generates one batch.

    In `generate`, the head sees (B, 1, D) per step: the last position's hidden state, the
    one that predicts the next token (the prefill's is its last prompt position). Stacked,
    they are the (B, T, D) states a teacher-forced clean pass recomputes, up to float
    rounding (the cached attention sums in another order). Anything else (no call, more
    than one generation, another batch layout) leaves `hidden` None: the caller then runs
    the teacher-forced pass.
    """

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self.generations = 0
        self.valid = True

    @contextmanager
    def recording(self, head):
        """Record the head's inputs while the block runs (one generation)."""
        self.generations += 1
        if head is None:
            self.valid = False
            yield
            return

        def hook(_module, args):
            x = args[0] if args else None
            if not isinstance(x, torch.Tensor) or x.dim() != 3:
                self.valid = False
                return
            self.steps.append(x[:, -1].detach())  # (B, n, D) -> (B, D)

        handle = head.register_forward_pre_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def recording_model(self, model):
        """`recording` on the model's output head."""
        return self.recording(model.get_output_embeddings())

    def hidden(self, rows: int, length: int) -> torch.Tensor | None:
        """(rows, length, D) recorded states, or None when they do not fit that batch."""
        ok = self.valid and self.generations == 1 and len(self.steps) >= length
        if not ok or length == 0 or any(s.shape[0] != rows for s in self.steps[:length]):
            return None
        return torch.stack(self.steps[:length], dim=1)  # length x (B, D) -> (B, T, D)


# ---- teacher-forced passes ----------------------------------------------------------


def with_response(
    inputs: dict, response_ids: torch.Tensor, response_mask: torch.Tensor | None = None
) -> dict:
    """Prompt inputs (B, P) extended by the response (B, T): input_ids concatenated, the
    attention mask by `response_mask` (default ones), type ids by zeros (text)."""
    B, T = response_ids.shape
    out = dict(inputs)
    device = inputs["input_ids"].device
    out["input_ids"] = torch.cat([inputs["input_ids"], response_ids.to(device)], dim=1)
    for key in EXTEND_WITH_ONES + EXTEND_WITH_ZEROS:
        if key not in inputs:
            continue
        if key in EXTEND_WITH_ONES and response_mask is not None:
            extra = response_mask.to(device=device, dtype=inputs[key].dtype)
        else:
            fill = 1 if key in EXTEND_WITH_ONES else 0
            extra = torch.full((B, T), fill, dtype=inputs[key].dtype, device=device)
        out[key] = torch.cat([inputs[key], extra], dim=1)  # (B, P+T)
    return out


@no_grad
def response_states(model, inputs: dict, n_prompt: int, n_response: int) -> torch.Tensor:
    """(B, T, D) last hidden states of one teacher-forced pass over prompt + response rows,
    at the positions that predict each response token (position t: the state after o_<t,
    the output head's input).

    Args:
        model: a transformers *ForConditionalGeneration model (its `.model` is the
            backbone whose last_hidden_state the output head reads).
        inputs: processor outputs with the response appended (`with_response`): input_ids
            (B, P+T), attention_mask, pixel inputs (a view's replace the clean ones).
        n_prompt, n_response: P (padded prompt width) and T.
    """
    P, T = n_prompt, n_response
    out = model.model(**inputs, use_cache=False)
    return out.last_hidden_state[:, P - 1 : P + T - 1]  # (B, P+T, D) -> (B, T, D)


@no_grad
def sequence_states(model, inputs: dict) -> torch.Tensor:
    """(B, L, D) last hidden states of a whole batch of sequences (teacher-forced)."""
    return model.model(**inputs, use_cache=False).last_hidden_state


# ---- signals ------------------------------------------------------------------------

SIGNAL_KINDS = ("full-vocabulary", "sampled-token", "hidden-state")


@dataclass(frozen=True)
class Signal:
    """One entry of SIGNALS."""

    name: str
    description: str
    kind: str
    """full-vocabulary (reads both distributions), sampled-token (the log-prob of the
    response token) or hidden-state (reads the states themselves)."""
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    """hidden-state signals: (clean (N, D), view (N, D)) -> (N,) float32. The others are
    computed in the head walk (`head_walk`), each log-softmax once."""

    def __post_init__(self) -> None:
        if self.kind not in SIGNAL_KINDS:
            raise ValueError(f"signal kind {self.kind!r}: choose one of {SIGNAL_KINDS}")
        if (self.kind == "hidden-state") != (self.compute is not None):
            raise ValueError("a hidden-state signal needs `compute`; the others are built in")


SIGNALS: Registry[Signal] = Registry("signal")
"""Per-token signals the engine computes. Built in: the head walk's. Add a hidden-state
signal with `SIGNALS.register(Signal(name, description, "hidden-state", compute))`: every
caller (analyze, batch, the TRL plug-in) then carries it in `Signals.extra`."""

for _signal in (
    Signal("entropy", "H of the clean distribution", "full-vocabulary"),
    Signal("entropy_noisy", "H' of the view's distribution", "full-vocabulary"),
    Signal("jsd", "JSD(clean, view) in [0, ln 2]", "full-vocabulary"),
    Signal("kl", "KL(clean || view)", "full-vocabulary"),
    Signal("logprob", "log-prob of the response token, clean", "sampled-token"),
    Signal("logprob_noisy", "log-prob of the response token under the view", "sampled-token"),
):
    SIGNALS.register(_signal)
del _signal


def hidden_state_signals() -> list[Signal]:
    return [s for s in SIGNALS.entries() if s.kind == "hidden-state"]


@dataclass(frozen=True, eq=False)
class Signals:
    """Per-token signals of B responses under K views (float32, CPU). Values at padding
    positions carry no meaning: mask them."""

    entropy: torch.Tensor
    """(B, T) H of the clean distribution."""
    logprob: torch.Tensor
    """(B, T) clean log-prob of each response token."""
    entropy_noisy: torch.Tensor
    """(K, B, T) H' under each view."""
    jsd: torch.Tensor
    """(K, B, T)."""
    kl: torch.Tensor
    """(K, B, T) KL(clean || view)."""
    logprob_noisy: torch.Tensor
    """(K, B, T) log-prob of each response token under each view."""
    top_ids: torch.Tensor | None = None
    """(B, T, k) the clean distribution's top-k token ids (top_k > 0)."""
    top_probs: torch.Tensor | None = None
    """(B, T, k) their clean probabilities."""
    top_probs_noisy: torch.Tensor | None = None
    """(K, B, T, k) their probabilities under each view."""
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    """{hidden-state signal name: (K, B, T)} of every registered hidden-state signal."""

    def stats(self) -> scoring.TokenStats | None:
        """TokenStats averaged over the views (None without views)."""
        if self.jsd.shape[0] == 0:
            return None
        draws = [
            scoring.TokenStats(entropy=self.entropy, entropy_noisy=noisy, jsd=jsd, kl=kl)
            for noisy, jsd, kl in zip(self.entropy_noisy, self.jsd, self.kl, strict=True)
        ]
        return scoring.average_stats(draws)


# ---- the head walk ------------------------------------------------------------------


@no_grad
def head_walk(
    head: HeadFn,
    clean: torch.Tensor,
    views: Sequence[torch.Tensor],
    ids: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    rows: int | None = None,
    n_vocab: int | None = None,
    min_chunks: int = 0,
) -> Signals:
    """Every full-vocabulary and sampled-token signal from hidden states, chunk by chunk.

    Args:
        head: (n, D) -> (n, V) logits (`output_head`).
        clean: (B, T, D) clean states; views: K tensors (B, T, D), one per view.
        ids: (B, T) response token ids (any valid id at padding).
        temperature: tau; every distribution is softmax(z / tau).
        top_k: also the clean top-k candidates and their probabilities under each view
            (0: none).
        rows: positions per chunk (None: `chunk_rows`); n_vocab: V if known (else one
            one-row head call reads it).
        min_chunks: make at least this many head calls per pass (idle one-row calls), so
            every process of a ZeRO-3 run makes the same number of collective calls.

    Each chunk's logits are computed once per pass and each log-softmax once; besides the
    head's (chunk, V) logits, two (chunk, V) and four small float32 buffers exist at a
    time, reused across chunks (`_Walk`).
    """
    B, T, D = clean.shape
    N, K = B * T, len(views)
    temperature = float(temperature)
    if not (temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature}")
    flat_clean = clean.reshape(N, D)  # (N, D)
    flat_views = [v.reshape(N, D) for v in views]  # K x (N, D)
    flat_ids = ids.reshape(N, 1).long().to(clean.device)  # (N, 1)
    V = int(n_vocab) if n_vocab else head_vocab_size(head, flat_clean)
    step = chunk_rows(V, clean.device, rows)
    starts = range(0, N, step)
    for _ in range(max(0, min_chunks - len(starts)) * (1 + K)):
        head(flat_clean[:1])  # idle: only the number of calls matters (ZeRO-3)
    k = min(int(top_k), V)
    out = _Outputs(N, K, k)
    sub = min(scoring.default_chunk_rows(V, clean.device), step, N)
    walk = _Walk(
        head, flat_clean, flat_views, flat_ids, 1.0 / temperature, k, out, min(step, N), sub, V
    )
    for start in starts:
        walk.chunk(start, min(start + step, N))
    del walk
    out.check_and_clamp(V, temperature)
    extra = _hidden_signals(flat_clean, flat_views)
    return out.signals(B, T, extra)


class _Outputs:
    """CPU buffers of the head walk's outputs over all N positions."""

    def __init__(self, N: int, K: int, k: int) -> None:
        self.entropy = torch.empty(N)
        self.logprob = torch.empty(N)
        self.noisy = torch.empty(4, K, N)  # H', JSD, KL, log-prob under each view
        self.k = k
        self.top_ids = torch.empty(N, k, dtype=torch.long)
        self.top_probs = torch.empty(N, k)
        self.top_probs_noisy = torch.empty(K, N, k)

    def check_and_clamp(self, V: int, temperature: float) -> None:
        """NaN/inf -> ValueError (as `scoring.token_stats`); then the ranges' clamps."""
        finite = bool(torch.isfinite(self.entropy).all()) and bool(
            torch.isfinite(self.noisy[:3]).all()
        )
        if not finite:
            raise ValueError(
                "the output head produced NaN/inf logits (or they overflow after dividing by "
                f"temperature={temperature}); use float32 or bfloat16 weights"
            )
        scoring.clamp_stats(self.entropy, self.noisy[0], self.noisy[1], self.noisy[2], V)

    def signals(self, B: int, T: int, extra: dict[str, torch.Tensor]) -> Signals:
        K = self.noisy.shape[1]
        top = self.k > 0
        return Signals(
            entropy=self.entropy.view(B, T),
            logprob=self.logprob.view(B, T),
            entropy_noisy=self.noisy[0].view(K, B, T),
            jsd=self.noisy[1].view(K, B, T),
            kl=self.noisy[2].view(K, B, T),
            logprob_noisy=self.noisy[3].view(K, B, T),
            top_ids=self.top_ids.view(B, T, self.k) if top else None,
            top_probs=self.top_probs.view(B, T, self.k) if top else None,
            top_probs_noisy=self.top_probs_noisy.view(K, B, T, self.k) if top else None,
            extra={name: x.view(K, B, T) for name, x in extra.items()},
        )


class _Walk:
    """The head walk's loop. Two levels of chunks: the head turns `step` positions into
    logits at once (its weights, V x D, are read once per chunk), and the statistics walk
    those logits `sub` rows at a time (scoring's chunk: the per-row workspaces stay in
    cache; on CPU that alone makes them ~1.4x faster at V = 151,936). Buffers: the
    clean chunk's p and log p (step, V), four (sub, V) workspaces."""

    def __init__(self, head, clean, views, ids, inv_t, k, out, step, sub, V) -> None:
        self.head, self.clean, self.views, self.ids = head, clean, views, ids
        self.inv_t, self.k, self.out = inv_t, k, out
        self.sub = max(1, sub)
        device = clean.device
        self.big = torch.empty(2, max(step, 1), V, dtype=torch.float32, device=device)
        self.small = torch.empty(4, self.sub, V, dtype=torch.float32, device=device)

    def _subs(self, n: int):
        return [(a, min(a + self.sub, n)) for a in range(0, n, self.sub)]

    def chunk(self, start: int, stop: int) -> None:
        n, out, k = stop - start, self.out, self.k
        p, logp = (b[:n] for b in self.big)  # (n, V) each: the clean distribution
        ids = self.ids[start:stop]  # (n, 1)
        z = self.head(self.clean[start:stop])  # (n, V)
        top_index = None
        for a, b in self._subs(n):
            scaled, tmp = self.small[0, : b - a], self.small[1, : b - a]
            scoring.log_softmax_into(z[a:b], self.inv_t, scaled, logp[a:b])  # (s, V)
            out.logprob[start + a : start + b] = logp[a:b].gather(-1, ids[a:b])[:, 0].cpu()
            torch.exp(logp[a:b], out=p[a:b])
            out.entropy[start + a : start + b] = scoring.entropy_of(p[a:b], logp[a:b], tmp).cpu()
        del z
        if k:
            top_logp, top_index = logp.topk(k, dim=-1)  # (n, k)
            out.top_ids[start:stop] = top_index.cpu()
            out.top_probs[start:stop] = top_logp.exp().cpu()
        for view, hidden in enumerate(self.views):
            zq = self.head(hidden[start:stop])  # (n, V)
            for a, b in self._subs(n):
                top = None if top_index is None else top_index[a:b]
                self._view_rows(view, zq[a:b], p[a:b], logp[a:b], ids[a:b], top, start + a)
            del zq

    def _view_rows(self, view, zq, p, logp, ids, top_index, at) -> None:
        """One view's signals of the rows at, at + 1, ... (zq: their (s, V) logits)."""
        out, k, s = self.out, self.k, zq.shape[0]
        q, logq, tmp, tmp2 = (w[:s] for w in self.small)  # (s, V) each
        scoring.log_softmax_into(zq, self.inv_t, q, logq)
        out.noisy[3, view, at : at + s] = logq.gather(-1, ids)[:, 0].cpu()
        if k:
            out.top_probs_noisy[view, at : at + s] = logq.gather(-1, top_index).exp().cpu()
        torch.exp(logq, out=q)
        stats = scoring.pair_stats(p, logp, q, logq, tmp, tmp2)  # (3, s): H', JSD, KL
        out.noisy[:3, view, at : at + s] = stats.cpu()


def _hidden_signals(clean: torch.Tensor, views: Sequence[torch.Tensor]) -> dict:
    """{name: (K, N)} of every registered hidden-state signal."""
    out = {}
    for signal in hidden_state_signals():
        values = [signal.compute(clean, view).float().reshape(-1).cpu() for view in views]
        out[signal.name] = torch.stack(values) if values else torch.empty(0, clean.shape[0])
    return out


# ---- views: many rows per forward ---------------------------------------------------

ROWS_PER_FORWARD = 8
"""Most rows of one teacher-forced pass over views: a row's K draws and its noise-floor
pass share one forward (analyze: K + 1 <= 8 rows for K <= 7); a batch of B >= 8 rows
takes one forward per view. Bounds the activations a request holds at once."""


def _view_rows(inputs: dict, views: Sequence[dict], pixel_keys: Sequence[str]) -> dict:
    """Inputs of len(views) copies of the B rows of `inputs`, view-major, each copy with
    its view's pixel inputs (a view without a key keeps the clean one)."""
    out = {}
    for key, value in inputs.items():
        if key in pixel_keys:
            parts = [view.get(key, value) for view in views]
        else:
            parts = [value] * len(views)
        out[key] = torch.cat(parts, dim=0) if isinstance(value, torch.Tensor) else value
    return out


@no_grad
def view_passes(
    model,
    inputs: dict,
    n_prompt: int,
    n_response: int,
    views: Sequence[dict],
    *,
    pixel_keys: Sequence[str],
    rows_per_forward: int = ROWS_PER_FORWARD,
    before_forward: Callable[[int], None] | None = None,
) -> list[torch.Tensor]:
    """(B, T, D) last states of the B rows of `inputs` (prompt + response, see
    `with_response`) under each view, as few forwards as `rows_per_forward` allows.

    views: per view, the pixel inputs that replace the clean ones for all B rows ({}: the
    clean image, e.g. the noise-floor pass). `before_forward(i)` is called before each
    forward with the index of its first view (deadline checks).
    """
    B = int(inputs["input_ids"].shape[0])
    per_forward = max(1, rows_per_forward // max(1, B))
    out: list[torch.Tensor] = []
    for first in range(0, len(views), per_forward):
        group = views[first : first + per_forward]
        if before_forward is not None:
            before_forward(first)
        batch = _view_rows(inputs, group, pixel_keys) if len(group) > 1 else None
        if batch is None:
            batch = {**inputs, **{k: v for k, v in group[0].items() if k in pixel_keys}}
        states = response_states(model, batch, n_prompt, n_response)  # (gB, T, D)
        out += list(states.split(B, dim=0))  # g x (B, T, D)
    return out
