"""The bad-input corpus: every case asserts the message a user sees, through the API
(vepo_viz.analyze and friends), the CLI (`vepo-viz analyze`, exit status 2) and the app
(the Analyze handler with the real embedded model, as gradio calls it: a gr.Error).

Cases: truncated, zero-byte and renamed files; the image formats; huge images; empty and
huge text; special characters and lone surrogates; every out-of-range setting; bad model
paths and path traversal; malformed JSONL, saved analyses and TOML. Uploads past the
app's size limit are refused by the served app (tests/test_e2e_client.py, and the
load test in tests/test_load.py exercises the largest allowed request).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from PIL import Image

from tests.ui_fixtures import embedded_model_ready
from vepo_viz import cli
from vepo_viz.analysis_settings import AnalysisSettings
from vepo_viz.errors import VepoError
from vepo_viz.perturb import PerturbConfig
from vepo_viz.ui import handlers as h
from vepo_viz.ui.backend import ModelBackend
from vepo_viz.ui.controls import ControlValues
from vepo_viz.ui.errors import user_errors

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not embedded_model_ready(), reason="needs the embedded model"),
]

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "images" / "color-1.png"

CONTROL_FLAGS = {
    "max_new_tokens": "--max-new-tokens",
    "temperature": "--temperature",
    "seed": "--seed",
    "cf_mode": "--perturb",
    "sigma": "--sigma",
    "n_draws": "--draws",
    "ratio": "--ratio",
    "alpha": "--alpha",
    "score_type": "--score-type",
}
"""The app's controls and the CLI flags that set the same settings."""


# ---- files ------------------------------------------------------------------------


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (the pixels are never there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
    data += struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    path.write_bytes(data)
    return path


def make_image(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.png"
    if kind == "sample":
        return SAMPLE
    if kind == "truncated":
        path.write_bytes(SAMPLE.read_bytes()[:200])
    elif kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "renamed_text":
        path.write_text("this is not an image\n")
    elif kind == "renamed_jsonl":
        path.write_text(json.dumps({"image": "x.png"}) + "\n")
    elif kind == "huge":
        _png_header_only(path, 30_000, 30_000)
    elif kind == "missing":
        return folder / "nope.png"
    elif kind == "traversal":
        return folder / ".." / ".." / ".." / "etc" / "passwd"
    elif kind == "folder":
        return folder
    else:
        raise AssertionError(kind)
    return path


FORMATS = {
    "gif": ("P", "GIF"),
    "webp": ("RGB", "WEBP"),
    "bmp": ("RGB", "BMP"),
    "tiff16": ("I;16", "TIFF"),
    "jpeg_cmyk": ("CMYK", "JPEG"),
    "rgba_png": ("RGBA", "PNG"),
    "gray_png": ("L", "PNG"),
    "jpeg_named_png": ("RGB", "JPEG"),
}


def make_format(name: str, folder: Path) -> Path:
    mode, fmt = FORMATS[name]
    image = Image.open(SAMPLE).convert("RGB").resize((48, 40))
    image = image.convert(mode) if mode != "I;16" else Image.new("I;16", (48, 40), 30_000)
    path = folder / f"{name}.{'png' if name.endswith('png') else fmt.lower()}"
    image.save(path, format=fmt)
    return path


# ---- the cases --------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    image: str = "sample"
    question: str = "What color is the square?"
    response: str | None = None
    controls: dict[str, Any] = field(default_factory=dict)
    model: str = "embedded"
    message: str = ""
    """A regex every surface's message matches."""
    surfaces: tuple[str, ...] = ("api", "cli", "app")


HUGE_RESPONSE = " red" * 2_000  # within the character limit, past the 512-token context
CASES = {
    # files
    "truncated file": Case(image="truncated", message="truncated or corrupt"),
    "zero-byte file": Case(image="zero_byte", message="not an image file Pillow can read"),
    "text renamed .png": Case(image="renamed_text", message="not an image file Pillow can"),
    "jsonl renamed .png": Case(image="renamed_jsonl", message="not an image file Pillow can"),
    "missing file": Case(image="missing", message="image file not found", surfaces=("api", "cli")),
    "a folder as image": Case(image="folder", message="image file not found"),
    "path traversal to /etc/passwd": Case(image="traversal", message="not an image file|not found"),
    "huge image (30000 x 30000)": Case(
        image="huge", message="too large to decode|more than vepo-viz decodes"
    ),
    # text
    "empty question": Case(question="", message="question is empty"),
    "blank question": Case(question=" \n\t ", message="question is empty"),
    "huge question": Case(question="why " * 25_000, message=r"question is 100,000 characters"),
    "huge pasted response (chars)": Case(
        response="x" * 40_001, message=r"response is 40,001 characters"
    ),
    "pasted response past the context": Case(
        response=HUGE_RESPONSE, message=r"model's context of 512 tokens"
    ),
    "empty pasted response": Case(response="", message="has no tokens", surfaces=("api", "cli")),
    "lone surrogate in the question": Case(
        question="What colour\ud800?", message=r"lone surrogate U\+D800"
    ),
    "lone surrogate in the response": Case(
        response="It is red\udcff", message=r"response holds a lone surrogate U\+DCFF"
    ),
    # settings
    "max new tokens 0": Case(controls={"max_new_tokens": 0}, message="max_new_tokens|max new"),
    "max new tokens past the limit": Case(
        controls={"max_new_tokens": 5000}, message=r"more than the limit of 1024"
    ),
    "max new tokens past the context": Case(
        controls={"max_new_tokens": 1000}, message=r"Lower max new tokens to at most"
    ),
    "K = 0": Case(controls={"n_draws": 0}, message=r"n_draws|draws K"),
    "K past the limit": Case(controls={"n_draws": 40}, message=r"40 counterfactual draws K"),
    "sigma -1": Case(controls={"sigma": -1.0}, message=r"sigma=-1.0 must be finite and >= 0"),
    "sigma nan": Case(controls={"sigma": float("nan")}, message=r"sigma"),
    "temperature -1": Case(controls={"temperature": -1.0}, message=r"temperature=-1.0 must be"),
    "ratio 5": Case(controls={"ratio": 5.0}, message=r"ratio=5.0 must be a number in"),
    "alpha 2": Case(controls={"alpha": 2.0}, message=r"alpha"),
    "score type bogus": Case(
        controls={"score_type": "bogus"}, message=r"unknown score type 'bogus'"
    ),
    "mode bogus": Case(controls={"cf_mode": "bogus"}, message=r"bogus"),
    "seed -1": Case(controls={"seed": -1}, message=r"seed"),
    "seed 2^63": Case(controls={"seed": 2**63}, message=r"seed.*must lie in \[0, "),
    # models
    "model folder missing": Case(model="/no/such/model", message=r"no model folder at"),
    "model folder without config": Case(model="tmp", message=r"holds no config.json"),
    "model traversal": Case(model="../../../../etc", message=r"not a model folder"),
}

SUCCESS = {
    "special characters": Case(question="¿Qué color? 🟥 \u200b עברית «x» \\n <b>&amp;</b>"),
    "pasted special characters": Case(response="Rot 🟥, \u202eevil\u202c & <script>"),
    **{f"format {name}": Case(image=f"format:{name}") for name in FORMATS},
}


# ---- the three surfaces -----------------------------------------------------------


def _image_of(case: Case, folder: Path) -> Path:
    if case.image.startswith("format:"):
        return make_format(case.image.split(":", 1)[1], folder)
    return make_image(case.image, folder)


def _model_of(case: Case, folder: Path) -> str:
    if case.model == "tmp":
        (folder / "model").mkdir(exist_ok=True)
        return str(folder / "model")
    return case.model


def _api_settings(controls: dict[str, Any]) -> AnalysisSettings:
    values = {"max_new_tokens": 4, **controls}
    perturb = {
        name: values.pop(key)
        for key, name in (("cf_mode", "mode"), ("sigma", "sigma"), ("n_draws", "n_draws"))
        if key in values
    }
    return AnalysisSettings.from_dict({**values, "perturb": PerturbConfig(**perturb)})


def run_api(case: Case, folder: Path):
    import vepo_viz

    model = _model_of(case, folder)
    image = _image_of(case, folder)
    settings = _api_settings(case.controls)
    target = None if model == "embedded" else model
    vlm = vepo_viz.load_model(target, device="cpu")
    return vepo_viz.analyze(vlm, image, case.question, case.response, settings)


def run_cli(case: Case, folder: Path, capsys) -> tuple[int, str]:
    argv = ["analyze", "--image", str(_image_of(case, folder)), "--question", case.question]
    argv += ["--device", "cpu", "--max-new-tokens", "4"]
    if case.response is not None:
        argv += ["--response", case.response]
    if case.model != "embedded":
        argv += ["--model", _model_of(case, folder)]
    for key, value in case.controls.items():
        argv += [CONTROL_FLAGS[key], str(value)]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own refusal
        code = exit_.code
    return code, capsys.readouterr().err


def run_app(case: Case, folder: Path):
    def on_analyze():  # as the app's event: the components' values through from_api
        return h.analyze(
            ModelBackend(device="cpu"),
            None,
            str(_image_of(case, folder)),
            case.question,
            case.response or "",
            _model_of(case, folder),
            ControlValues.from_api({"max_new_tokens": 4, **case.controls}),
        )

    return user_errors(on_analyze)()


@pytest.mark.parametrize("name", list(CASES))
def test_api_message(name, tmp_path):
    case = CASES[name]
    if "api" not in case.surfaces:
        pytest.skip("not a case of this surface")
    with pytest.raises(VepoError, match=case.message):
        run_api(case, tmp_path)


@pytest.mark.parametrize("name", list(CASES))
def test_cli_message(name, tmp_path, capsys):
    case = CASES[name]
    if "cli" not in case.surfaces:
        pytest.skip("not a case of this surface")
    code, err = run_cli(case, tmp_path, capsys)
    assert code == 2, err
    assert "bug" not in err and "Traceback" not in err
    assert __import__("re").search(case.message, err), err


@pytest.mark.parametrize("name", list(CASES))
def test_app_message(name, tmp_path):
    case = CASES[name]
    if "app" not in case.surfaces:
        pytest.skip("not a case of this surface")
    with pytest.raises(gr.Error, match=case.message) as error:
        run_app(case, tmp_path)
    assert "unexpected error" not in str(error.value)
    assert str(tmp_path) not in str(error.value)  # no server paths in the app


@pytest.mark.parametrize("name", list(SUCCESS))
def test_good_inputs_work_everywhere(name, tmp_path, capsys):
    case = SUCCESS[name]
    result = run_api(case, tmp_path)
    assert len(result) >= 1
    code, err = run_cli(case, tmp_path, capsys)
    assert code == 0, err
    session, view, _ = run_app(case, tmp_path)
    assert session.current is not None and view.summary


# ---- files other than images --------------------------------------------------------

JSONL = {
    "non-UTF-8": (b"\xff\xfe{\x00", "is not UTF-8 text"),
    "not JSON": (b"{bad\n", "not valid JSON"),
    "not an object": (b"[1, 2]\n", "must be a JSON object"),
    "no image": (b'{"question": "q"}\n', "needs a non-empty string 'image'"),
    "duplicate id": (b'{"id": 1, "image": "a.png", "question": "q"}\n' * 2, "duplicate id"),
    "zero-byte": (b"", "holds no examples"),
    "bad response": (b'{"image": "a.png", "question": "q", "response": 3}\n', "must be a string"),
}


@pytest.mark.parametrize("name", list(JSONL))
def test_malformed_jsonl(name, tmp_path, capsys):
    from vepo_viz.batch import read_rows
    from vepo_viz.ui import batch as hbatch

    content, message = JSONL[name]
    data = tmp_path / "data.jsonl"
    data.write_bytes(content)
    with pytest.raises(VepoError, match=message):
        read_rows(data)
    assert cli.main(["batch", str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and "bug" not in err
    image = tmp_path / "a.png"
    image.write_bytes(SAMPLE.read_bytes())
    with pytest.raises(gr.Error, match=message) as error:
        user_errors(hbatch.jsonl_rows)([str(data), str(image)], tmp_path / "work")
    assert str(tmp_path) not in str(error.value)


@pytest.mark.parametrize("image", ["../secret.png", "/etc/passwd", "a/../../b.png"])
def test_batch_upload_path_traversal_is_refused(image, tmp_path):
    from vepo_viz.ui import batch as hbatch

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"image": image, "question": "q"}) + "\n")
    with pytest.raises(gr.Error, match="must be a relative path"):
        user_errors(hbatch.jsonl_rows)([str(data), str(SAMPLE)], tmp_path / "work")


def _saved(tmp_path: Path) -> dict:
    legacy = Path(__file__).parent / "legacy" / "analysis_v1.json"
    return json.loads(legacy.read_text())


def _edit(data: dict, where: str, value: Any) -> dict:
    data = json.loads(json.dumps(data))
    target = data
    *parents, key = where.split(".")
    for part in parents:
        target = target[part]
    target[key] = value
    return data


SAVED = {
    "zero-byte": (lambda d: b"", r"not a JSON file|cannot read"),
    "truncated": (lambda d: json.dumps(d).encode()[:300], r"not a JSON file|cannot read"),
    "not UTF-8": (lambda d: b"\xff\xfe\x00{", r"not a JSON file|cannot read"),
    "a list": (lambda d: b"[1, 2, 3]", r"not a saved|not a saved TokenAnalysis"),
    "another format": (lambda d: json.dumps(_edit(d, "format", "x")).encode(), "format 'x'"),
    "ratio 5": (
        lambda d: json.dumps(_edit(d, "settings.ratio", 5)).encode(),
        r"ratio=5.0 must be a number in",
    ),
    "score type bogus": (
        lambda d: json.dumps(_edit(d, "settings.score_type", "bogus")).encode(),
        "unknown score type 'bogus'",
    ),
    "arrays of the wrong length": (
        lambda d: json.dumps(_edit(d, "entropy", [0.1])).encode(),
        "entropy has shape",
    ),
    "a newer format": (
        lambda d: json.dumps(_edit(d, "format_version", 999)).encode(),
        "newer format version",
    ),
}


@pytest.mark.parametrize("name", list(SAVED))
def test_malformed_saved_analysis(name, tmp_path):
    from vepo_viz.results import TokenAnalysis
    from vepo_viz.ui.session import load_session

    make, message = SAVED[name]
    path = tmp_path / "saved.json"
    path.write_bytes(make(_saved(tmp_path)))
    with pytest.raises((VepoError, ValueError), match=message):
        TokenAnalysis.load(path)
    with pytest.raises(gr.Error, match=message) as error:
        user_errors(load_session)(str(path))
    assert str(tmp_path) not in str(error.value)


TOML = {
    "not TOML": (b"steps = = 3\n", "is not valid TOML"),
    "not UTF-8": (b"\xff\xfe steps = 1\n", "is not valid TOML"),
    "unknown key": (b"no_such_setting = 1\n", "no_such_setting"),
    "a bad value": (b'adv_norm = "bogus"\n', "bogus"),
    "a wrong type": (b'steps = "many"\n', "steps"),
}


@pytest.mark.parametrize("name", list(TOML))
def test_malformed_toml(name, tmp_path, capsys):
    from vepo_viz.train.config import TrainConfig

    content, message = TOML[name]
    path = tmp_path / "run.toml"
    path.write_bytes(content)
    with pytest.raises(VepoError, match=message):
        TrainConfig.from_toml(path)
    assert cli.main(["train", "--config", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert message in err and "bug" not in err
