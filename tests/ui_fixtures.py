"""Deterministic TokenAnalysis objects and a fake model backend for render/UI tests.

No model, no weights: the per-token statistics are seeded random numbers and the scores
and selections come from the real scoring code (`scoring.score_response`), so every view
shows numbers that obey the paper's definitions. Building one takes about a millisecond.
"""

from __future__ import annotations

import hashlib

import numpy as np

from vepo_viz.analysis import AnalysisSettings
from vepo_viz.results import TokenAnalysis
from vepo_viz.scoring import score_response

DEFAULT_RESPONSE = "Looking at the diamond. It is red. Therefore, the answer is red."


def split_tokens(text: str) -> list[str]:
    """Byte-level-BPE-like pieces: words with their leading space, punctuation apart."""
    pieces: list[str] = []
    word = ""
    for ch in text:
        if ch.isalnum() or ch == "'":
            word += ch
            continue
        if word.strip():
            pieces.append(word)
            word = ""
        if ch == " ":
            word = " "
        else:
            if word:
                pieces.append(word)
                word = ""
            pieces.append(ch)
    if word:
        pieces.append(word)
    return pieces


def fake_analysis(
    response: str = DEFAULT_RESPONSE,
    *,
    seed: int = 0,
    question: str = "What color is the diamond?",
    model_id: str = "fake-model",
    settings: AnalysisSettings | None = None,
    tokens: list[str] | None = None,
    image_size: tuple[int, int] = (112, 112),
    generated: bool = True,
) -> TokenAnalysis:
    """A TokenAnalysis of `response` with seeded statistics (same seed -> same numbers)."""
    settings = settings or AnalysisSettings()
    tokens = tokens if tokens is not None else split_tokens(response)
    n = len(tokens)
    rng = np.random.default_rng(seed + 1000 * settings.perturb.n_draws)
    shift = {"gaussian": 0.0, "no_image": 0.3, "black": 0.2, "blur": 0.1}.get(
        settings.perturb.mode, 0.05
    )
    entropy = rng.gamma(1.5, 0.6, n).astype(np.float32)
    entropy_noisy = (entropy + rng.normal(shift, 0.4, n)).clip(0).astype(np.float32)
    jsd = rng.uniform(0, np.log(2) * 0.8, n).astype(np.float32)
    kl = (jsd * rng.uniform(1.5, 3, n)).astype(np.float32)
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok)
    k = 5
    top_tokens = [[tok] + [f" alt{j}" for j in range(1, k)] for tok in tokens]
    top_probs = np.sort(rng.dirichlet(np.ones(k + 1), n)[:, :k], axis=1)[:, ::-1]
    top_noisy = rng.dirichlet(np.ones(k + 1), n)[:, :k]
    scored = score_response(
        entropy=entropy,
        entropy_noisy=entropy_noisy,
        jsd=jsd,
        kl=kl,
        config=settings.scoring,
    )
    zeros = np.zeros(n, dtype=np.float32)
    return TokenAnalysis(
        response="".join(tokens),
        tokens=tokens,
        token_ids=np.arange(n) + 10,
        offsets=np.asarray(offsets),
        entropy=entropy,
        entropy_noisy=entropy_noisy,
        jsd=jsd,
        kl=kl,
        entropy_gap=entropy_noisy - entropy,
        entropy_noisy_std=zeros,
        jsd_std=zeros,
        kl_std=zeros,
        entropy_gap_std=zeros,
        logprob=np.log(top_probs[:, 0]).astype(np.float32),
        logprob_noisy=np.log(top_noisy[:, 0]).astype(np.float32),
        top_ids=np.tile(np.arange(k), (n, 1)),
        top_tokens=top_tokens,
        top_probs=top_probs.astype(np.float32),
        top_probs_noisy=top_noisy.astype(np.float32),
        question=question,
        model_id=model_id,
        family="qwen2_vl",
        image_digest="sha256:" + hashlib.sha256(response.encode()).hexdigest(),
        image_size=image_size,
        generated=generated,
        settings=settings.to_dict(),
        versions={"vepo_viz": "test"},
        timing={"total": 0.0},
        visual_sensitivity=scored.visual_sensitivity,
        scores=scored.scores,
        selected_vepo=scored.selected_vepo,
        selected_entropy=scored.selected_entropy,
        selection_share=scored.selection_share,
        draw_jaccard=scored.draw_jaccard,
    )


class FakeBackend:
    """The app's Backend without a model: deterministic TokenAnalysis objects in ~1 ms.

    The response is the pasted one, else a fixed sentence; the statistics depend on the
    question, the model name and the counterfactual settings (so changing them changes
    the numbers, as a real model would). Records every call.
    """

    def __init__(self, responses: dict[str, str] | None = None, fail: Exception | None = None):
        self.calls: list[dict] = []
        self.responses = responses or {}
        self.fail = fail

    def analyze(self, model_name, image, question, response, settings, progress=None):
        self.calls.append(
            {"model": model_name, "question": question, "response": response, "settings": settings}
        )
        if self.fail is not None:
            raise self.fail
        if progress:
            progress(0.5, "fake model")
        text = response or self.responses.get(model_name or "", DEFAULT_RESPONSE)
        seed = int(hashlib.sha256(f"{model_name}|{question}".encode()).hexdigest()[:6], 16)
        size = getattr(image, "size", (112, 112))
        result = fake_analysis(
            text,
            seed=seed,
            question=question,
            model_id=model_name or "embedded",
            settings=settings,
            image_size=size,
            generated=response is None,
        )
        if image is not None:  # what a real analysis stores for the views
            from vepo_viz.analysis import add_views
            from vepo_viz.models.images import load_image

            result = add_views(result, load_image(image))
        return result


# ---- a served app for the end-to-end and browser tests ------------------------------------


def embedded_model_ready() -> bool:
    """True when the embedded tiny model's files are in place."""
    from pathlib import Path

    from vepo_viz.tiny import DEFAULT_MODEL

    folder = Path(DEFAULT_MODEL)
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_app(model: str, max_file_size: str = "25mb", backend=None, policy=None, auth=None):
    """Launch the app on 127.0.0.1 and a free port in this process: (demo, url).
    `policy`: a ServingPolicy (e.g. a remote one); `auth`: demo.launch's login arguments."""
    from vepo_viz.ui.app import build_app, launch_kwargs
    from vepo_viz.ui.backend import ModelBackend

    backend = backend or ModelBackend(device="cpu")
    demo = build_app(backend, default_model=model, policy=policy)
    demo.queue(default_concurrency_limit=4)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **(auth or {}),
        **launch_kwargs(max_file_size=max_file_size),
    )
    return demo, f"http://127.0.0.1:{port}/"


def serve_app_process(model: str, timeout_s: float = 300.0, extra_args: tuple[str, ...] = ()):
    """`python app.py --host 127.0.0.1 --port N --model MODEL [extra_args]` in a subprocess,
    as a user runs it: (process, url). The caller terminates the process."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    root = Path(__file__).resolve().parents[1]
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)),
            *("--model", model, *extra_args),
        ],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    process.terminate()
    raise TimeoutError(f"app.py did not answer on {url} within {timeout_s} s")


TRAIN_FORM = dict(
    name="r1",
    model="tiny",
    selection="vepo",
    score_type="D",
    ratio=0.2,
    steps=5,
    prompts_per_step=2,
    group_size=4,
    lr=1e-5,
    seed=0,
    families=["color"],
    difficulty=0.5,
    extra="",
)
"""The Train tab's form fields of a small run, in the order start_from_form takes them."""
