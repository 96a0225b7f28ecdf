"""Load test (slow, bounded, loopback only): 8 clients keep analysing while a ninth
submits the largest request the limits allow. The short requests' median latency stays
within 3x of the same 8 clients' without the large one, no request fails, and every
client gets its own result. The figures are printed (pytest -s shows them).

Why this holds: model work runs one job at a time in one FIFO queue (concurrency_id
"model", limit 1; the model's generation hook is not thread-safe and one model job at a
time bounds memory), and `RequestLimits` plus the model's context bound the largest job,
so a short request waits for at most one large job, not for an unbounded one.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from tests.test_e2e_client import SETTINGS as E2E_SETTINGS
from tests.ui_fixtures import embedded_model_ready, serve_app
from vepo_viz.ui.samples import load_samples

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not embedded_model_ready(), reason="needs the embedded model"),
]

N_CLIENTS = 8
ROUNDS = 3
"""Short requests per client per phase."""
REQUEST_TIMEOUT_S = 600.0
"""No single request may take longer (the test is bounded)."""

SETTINGS = {**E2E_SETTINGS, "max_new_tokens_value": 8}
"""The end-to-end tests' settings (a pasted response is scored: no generation)."""


def _largest_response(image_path: str, question: str) -> tuple[str, int]:
    """A pasted response that fills the embedded model's context exactly (the largest
    request the limits allow, with K = RequestLimits().max_draws)."""
    from vepo_viz.analysis import model_context
    from vepo_viz.models import load_model
    from vepo_viz.models.images import load_image

    vlm = load_model(None, device="cpu")
    prompt = vlm.prompt(load_image(image_path), question)
    room = model_context(vlm) - prompt.n_tokens
    words = room
    while len(vlm.response_ids(prompt, " red" * words)) > room:
        words -= 1
    return " red" * words, len(vlm.response_ids(prompt, " red" * words))


def _tokens_text(table: dict) -> str:
    column = table["headers"].index("token")
    text = "".join(str(row[column]) for row in table["data"])
    return text.replace("\u2423", "").replace(" ", "")  # the table shows spaces as ␣


class Runner:
    """Clients that each analyse their own pasted response and record latencies."""

    def __init__(self, url: str, sample) -> None:
        from gradio_client import Client, handle_file

        # Output files are not fetched: the test measures the queue and checks each table.
        # (One CI run lost an image download, 0 of 24,849 bytes, while 8 sessions got the
        # same image: gradio serves identical outputs from one cache file.)
        self.clients = [
            Client(url, verbose=False, download_files=False) for _ in range(N_CLIENTS + 1)
        ]
        self.image = handle_file(sample.image_path)
        self.question = sample.question
        self.errors: list[str] = []
        self.mixups: list[str] = []

    def predict(self, client, response: str, **settings):
        job = client.submit(
            image_path=self.image,
            question_text=self.question,
            response_text=response,
            model_name="embedded",
            **{**SETTINGS, **settings},
            api_name="/analyze",
        )
        return job.result(timeout=REQUEST_TIMEOUT_S)

    def short(self, i: int, rounds: int, out: list[float]) -> None:
        for r in range(rounds):
            response = f"It is red, says client {i} in round {r}."
            started = time.perf_counter()
            try:
                table = self.predict(self.clients[i], response)[3]
            except Exception as error:  # noqa: BLE001 - counted, then asserted on
                self.errors.append(f"client {i}: {error}")
                continue
            out.append(time.perf_counter() - started)
            if _tokens_text(table) != response.replace(" ", ""):
                self.mixups.append(f"client {i} round {r} got {_tokens_text(table)!r}")

    def phase(self, n_clients: int, rounds: int, big: tuple[str, int] | None = None) -> dict:
        latencies: list[float] = []
        threads = [
            threading.Thread(target=self.short, args=(i, rounds, latencies))
            for i in range(n_clients)
        ]
        big_s: list[float] = []
        if big is not None:
            threads.append(threading.Thread(target=self._big, args=(*big, big_s)))
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(REQUEST_TIMEOUT_S * (rounds + 1))
        return {
            "latencies": latencies,
            "wall": time.perf_counter() - started,
            "big": big_s[0] if big_s else None,
        }

    def _big(self, response: str, n_tokens: int, out: list[float]) -> None:
        from vepo_viz.limits import RequestLimits

        time.sleep(0.5)  # the short clients are in the queue first
        started = time.perf_counter()
        try:
            table = self.predict(
                self.clients[N_CLIENTS], response, n_draws_value=RequestLimits().max_draws
            )[3]
            out.append(time.perf_counter() - started)
            if len(table["data"]) != n_tokens:
                self.mixups.append("the large request got another result")
        except Exception as error:  # noqa: BLE001
            self.errors.append(f"large request: {error}")


def _figures(name: str, run: dict) -> str:
    values = sorted(run["latencies"])
    if not values:
        return f"{name}: no finished requests"
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    text = (
        f"{name}: n={len(values)} median {statistics.median(values):.2f} s, p90 {p90:.2f} s, "
        f"max {values[-1]:.2f} s, wall {run['wall']:.1f} s"
    )
    return text + (f", large request {run['big']:.2f} s" if run["big"] else "")


def test_short_requests_are_not_starved_by_the_largest_allowed_one():
    sample = load_samples()[0]
    demo, url = serve_app("embedded")
    try:
        big = _largest_response(sample.image_path, sample.question)
        runner = Runner(url, sample)
        runner.predict(runner.clients[0], "warm up.")  # the model is loaded once
        alone = runner.phase(1, ROUNDS)
        crowd = runner.phase(N_CLIENTS, ROUNDS)
        loaded = runner.phase(N_CLIENTS, ROUNDS, big=big)
    finally:
        demo.close()
    print()
    for name, run in (("1 client alone", alone), ("8 clients", crowd), ("8 + largest", loaded)):
        print(_figures(name, run))
    base = statistics.median(crowd["latencies"])
    with_big = statistics.median(loaded["latencies"])
    print(
        f"median ratio with the largest request: {with_big / base:.2f}x of 8 clients "
        f"alone ({with_big / statistics.median(alone['latencies']):.2f}x of one client)"
    )
    assert runner.errors == []
    assert runner.mixups == []
    assert loaded["big"] is not None  # the largest request finished too
    assert len(loaded["latencies"]) == len(crowd["latencies"]) == N_CLIENTS * ROUNDS
    assert with_big <= 3 * base
