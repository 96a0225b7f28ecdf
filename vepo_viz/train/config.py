"""`TrainConfig`: every setting of a GRPO run, frozen and validated, from TOML or flags.

    cfg = TrainConfig(selection="vepo", steps=40)            # Python
    cfg = TrainConfig.from_toml("run.toml", steps=80)        # a file, then overrides
    vepo-viz train --config run.toml --steps 80              # the command line

The defaults are a small CPU run of the embedded tiny model on the task suite with the
VEPO reference selection (ScoringConfig's and PerturbConfig's defaults: type D, top 20%
per response, Gaussian noise on normalised pixels). A bad value raises `VepoInputError` with a message that says what to
do, before any model is loaded.

Scoring and the counterfactual view are the app's own `ScoringConfig` and `PerturbConfig`
(fields `scoring` and `perturb`), validated by themselves and read there
(`cfg.scoring.alpha`, `cfg.perturb_config.sigma`). Files and flags stay flat
(score_type = "D", sigma = 2.0, perturb = "patch", ...): `from_dict` sorts those keys
into the two configs and `to_dict` writes them back flat, so old run folders resume.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from vepo_viz.data.readers import missing_data
from vepo_viz.data.verifiers import VERIFIERS
from vepo_viz.errors import VepoInputError
from vepo_viz.perturb import MODES, PerturbConfig
from vepo_viz.scoring import SCORE_TYPES, ScoringConfig
from vepo_viz.train.rules import RULES, selection_problems

FINETUNE_MODES: tuple[str, ...] = ("auto", "full", "lora")
ADV_NORMS: tuple[str, ...] = ("std", "none")
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
AUTO_LORA_PARAMS = 200_000_000
"""finetune="auto" picks LoRA for models with more parameters than this, full otherwise."""

MAX_STEPS = 1_000_000
"""The most steps (and step periods: eval_every, ckpt_every, ...) a run may ask for."""
MAX_ROLLOUT = 65_536
"""The most sequences one step may sample (prompts_per_step x group_size)."""
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),  # numpy's seed range (TRL seeds numpy too)
    "threads": (0, 256),  # and at most this machine's CPU count when the run starts
    "n_eval": (0, 10_000),
    "eval_every": (0, MAX_STEPS),
    "steps": (1, MAX_STEPS),
    "prompts_per_step": (1, 4_096),
    "group_size": (2, 1_024),
    "max_new_tokens": (1, 32_768),
    "warmup_steps": (0, MAX_STEPS),
    "micro_batch_size": (1, MAX_ROLLOUT),
    "ppo_epochs": (1, 64),
    "diagnostics_every": (0, MAX_STEPS),
    "lora_r": (1, 4_096),
    "ckpt_every": (0, MAX_STEPS),
    "keep_checkpoints": (1, 1_000),
    "trace_every": (0, MAX_STEPS),
    "trace_samples": (1, 1_024),
}
"""[lowest, highest] of every integer setting of TrainConfig (both included). A value
outside, or a number that is not a whole one (steps = 1.5, steps = 1e20 in TOML), is
refused with the range, never rounded or clipped. `vepo-viz train --help` shows them."""

RESUME_SAFE: tuple[str, ...] = (
    "out",
    "resume",
    "steps",
    "eval_every",
    "ckpt_every",
    "keep_checkpoints",
    "trace_every",
    "trace_samples",
    "report_to",
    "threads",
    "micro_batch_size",
    "gradient_checkpointing",
)
"""Settings a resume may change: how long the run goes on, how often it evaluates, saves and
traces, where it logs, and how it uses the machine -- not what a step computes. A resume
that changes any other setting is refused (see `config_changes`)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """One GRPO run. Field docstrings say what each setting does and its safe range."""

    # ---- run --------------------------------------------------------------------
    out: str = "runs/train/run"
    """Run folder: config.toml, metrics.jsonl, status.json, log.txt, checkpoints/, final/."""
    model: str = "tiny"
    """"tiny" or "embedded" (the embedded model), a model folder, or a hub id (e.g.
    Qwen/Qwen2.5-VL-3B-Instruct, loaded from the local cache when offline)."""
    device: str = "auto"
    """"auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N"."""
    dtype: str = "auto"
    """"auto": bfloat16 on CUDA, float32 elsewhere; or float32 / bfloat16 / float16."""
    seed: int = 0
    """Seeds the data order, the sampling, the counterfactual noise and random selection."""
    threads: int = 0
    """torch CPU threads (0: leave torch's default)."""
    report_to: str = "none"
    """Where TRL also logs, comma-separated: tensorboard, trackio, wandb, all; "none" =
    only the run folder's metrics.jsonl (passed through as GRPOConfig.report_to)."""

    # ---- data -------------------------------------------------------------------
    data: str = "suite"
    """"suite" (the procedural task suite), or a dataset with reference answers: a
    `datasets` folder, a Parquet file/folder/glob, a hub id in the local cache, or a JSONL
    (the suite's export format: image, question, answer, optional answer_space/family/id)."""
    families: tuple[str, ...] = ("read",)
    """Suite families to train and evaluate on; empty = all of them. The default, number
    reading at difficulty 1, is where the embedded model still errs: its other families
    give groups of equal rewards (zero advantage, nothing to learn; docs/mini_reproduction.md)."""
    difficulty: float = 1.0
    """Suite difficulty in [0, 1] (train and held-out)."""
    eval_data: str = ""
    """Held-out data for a user dataset (any form `data` takes); the suite uses its
    held-out split."""
    image_column: str = ""
    """Image column of the dataset; "" = the first of images, image, image_path, img."""
    question_column: str = ""
    """Question column; "" = the first of problem, question, query, prompt."""
    answer_column: str = ""
    """Reference answer column; "" = the first of answer, solution, ground_truth, label."""
    split: str = ""
    """Split of a `datasets` folder or hub dataset ("" = train, else the first); eval_data
    is read from the same split name when it is a folder with splits."""
    verifier: str = field(default="auto", metadata={"registry": VERIFIERS})
    """How rewards check an answer (an entry of data.VERIFIERS); "auto": the suite's
    verifier on suite data, else by the look of each reference answer."""
    n_eval: int = 100
    """Held-out examples per family (suite) or in total (JSONL); 0 turns evaluation off."""
    eval_every: int = 10
    """Greedy held-out accuracy every N steps (and before the first and after the last)."""
    prompt_suffix: str = ""
    """Appended to every question, e.g. ' End with "the answer is X."' for a general VLM."""

    # ---- GRPO -------------------------------------------------------------------
    steps: int = 30
    """Optimizer steps; each samples a fresh batch of prompts."""
    prompts_per_step: int = 4
    """Distinct prompts per step."""
    group_size: int = 16
    """G: sampled responses per prompt (>= 2, advantages are normalised within a group).
    More responses make a group with differing rewards likelier on easy prompts."""
    max_new_tokens: int = 48
    """Longest response; a response without an end token is cut here and kept (the
    embedded model's longest suite answer is 39 tokens)."""
    temperature: float = 1.3
    """Sampling temperature tau; log-probs and token statistics use the same tau. Above 1
    by default: the embedded model is so sure that at tau = 1 most groups get equal rewards."""
    lr: float = 3e-5
    """AdamW learning rate (constant after warmup). The default is for the embedded model:
    on its default task 30 steps at 1e-4 or 2e-4 lower its greedy held-out accuracy (0.88
    to 0.81 or 0.73 over 100 questions), 3e-5 keeps it (0.87); the Train tab and the CLI
    warn when held-out accuracy falls beyond its noise."""
    warmup_steps: int = 0
    """Linear warmup from lr / warmup_steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (0 = off)."""
    micro_batch_size: int = 16
    """Sequences per forward/backward (at most; the largest divisor of prompts_per_step x
    group_size that fits): TRL accumulates gradients over the generation batch, so this
    changes memory and speed, not the update."""
    ppo_epochs: int = 1
    """Optimizer steps on each rollout batch (1: ratio = 1, clipping inactive)."""
    clip_eps: float = 0.2
    """PPO clip range below 1: ratio clipped at 1 - clip_eps."""
    clip_eps_high: float = 0.2
    """PPO clip range above 1 (0.28 is DAPO's clip-higher)."""
    kl_beta: float = 0.0
    """Weight of the k3 KL to the frozen initial model (0 = no reference model)."""
    adv_norm: str = "std"
    """"std": (r - mean) / (std + eps) per group (GRPO); "none": r - mean (Dr. GRPO)."""
    loss_mode: str = "mask"
    """"mask": mean clipped loss over selected tokens only (the reference); "weight":
    weight 1 + weight_lambda on selected tokens, mean over all valid tokens."""
    weight_lambda: float = 1.0
    """Extra weight of selected tokens in "weight" mode."""

    # ---- token selection --------------------------------------------------------
    selection: str = field(default="vepo", metadata={"registry": RULES})
    """Which tokens each step trains on (an entry of train.rules.RULES)."""
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    """How the top-ratio rules rank and keep tokens: score_type (of the "vepo" rule),
    alpha, ratio, scope (flat keys in files and flags). Its temperature and seed are
    this run's."""
    vppo_rescale: bool = True
    """VPPO: scale each response's advantage by its mean visual dependency."""
    perturb: PerturbConfig | None = None
    """The counterfactual view: mode (flat key "perturb"), sigma, n_draws, ...; None = the
    rule's reference (its RULES entry's perturb) with the default parameters."""
    diagnostics_every: int = 5
    """For rules that need no counterfactual pass (all, entropy, random), run one anyway
    every N steps to log the visual sensitivity of their selected tokens (0 = never)."""

    # ---- fine-tuning ------------------------------------------------------------
    finetune: str = "auto"
    """"full", "lora", or "auto" (LoRA above AUTO_LORA_PARAMS parameters)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator (scale = lora_alpha / lora_r)."""
    lora_dropout: float = 0.0
    """LoRA dropout (0 keeps the first-epoch ratio exactly 1)."""
    lora_targets: str = ""
    """peft target_modules regex; "" = attention and MLP projections of the language model
    (the vision tower stays frozen)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward (saves memory on real VLMs)."""

    # ---- checkpoints ------------------------------------------------------------
    ckpt_every: int = 10
    """Checkpoint every N steps (and at the last step); 0 = only at the end."""
    keep_checkpoints: int = 2
    """Most recent checkpoints kept on disk (>= 1)."""
    resume: bool = True
    """Continue from the newest checkpoint in `out` when there is one."""

    # ---- selection traces -------------------------------------------------------
    trace_every: int = 0
    """Save a selection trace every N steps (0 = never): a few completions with their
    per-token scores and selections, as TokenAnalysis records in <out>/traces/."""
    trace_samples: int = 4
    """Completions saved per trace (the first rows of the generation batch)."""

    # ---- TRL --------------------------------------------------------------------
    trl: dict[str, Any] = field(default_factory=dict)
    """Further fields of TRL's GRPOConfig, passed through as given (a [trl] table in TOML,
    --trl KEY=VALUE on the command line), e.g. use_vllm = true, vllm_mode = "colocate";
    they win over the values mapped from this config. Checked against the pinned trl."""

    _extra_errors: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.families, list):
            object.__setattr__(self, "families", tuple(self.families))
        errors = list(self._extra_errors) + _validate(self)
        if not errors:  # the sub-configs' temperature and seed are the run's
            object.__setattr__(
                self,
                "scoring",
                dataclasses.replace(self.scoring, temperature=self.temperature, seed=self.seed),
            )
            if self.perturb is not None:
                object.__setattr__(
                    self, "perturb", dataclasses.replace(self.perturb, seed=self.seed)
                )
        if errors:
            raise VepoInputError(
                "invalid training config:\n  - " + "\n  - ".join(errors)
                if len(errors) > 1
                else f"invalid training config: {errors[0]}"
            )

    # ---- derived ----------------------------------------------------------------

    @property
    def perturb_config(self) -> PerturbConfig:
        """The counterfactual view actually used (the rule's reference when perturb is None)."""
        if self.perturb is not None:
            return self.perturb
        return PerturbConfig(mode=self.rule.perturb, seed=self.seed)

    @property
    def needs_counterfactual(self) -> bool:
        """Whether every step runs the counterfactual pass (the rule's entry says)."""
        return self.rule.needs_counterfactual(self)

    @property
    def rule(self):
        """The selection rule's entry in RULES."""
        return RULES[self.selection]

    @property
    def rollout_size(self) -> int:
        """Sequences per step: prompts_per_step x group_size."""
        return self.prompts_per_step * self.group_size

    @property
    def micro_batch(self) -> int:
        """Sequences per forward/backward: the largest divisor of rollout_size that is at
        most micro_batch_size (the generation batch splits into equal micro-batches)."""
        cap = min(self.micro_batch_size, self.rollout_size)
        return max(d for d in range(1, cap + 1) if self.rollout_size % d == 0)

    @property
    def out_path(self) -> Path:
        return Path(self.out)

    # ---- I/O --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every setting under its flat key (the sub-configs' fields inline)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if f.name == "scoring":
                out.update(flat_scoring(value))
            elif f.name == "perturb":
                out.update(flat_perturb(value))
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_toml(self) -> str:
        """The config as TOML text (every field; reads back with `from_toml`)."""
        return "".join(f"{key} = {_toml_value(value)}\n" for key, value in self.to_dict().items())

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a mapping of flat keys (or `scoring`/`perturb` as configs or
        tables); unknown keys are rejected with the closest setting name."""
        values = dict(values)
        errors: list[str] = []
        given = _pop_flat(values, "scoring", SCORING_KEYS)
        scoring = _sub_config(ScoringConfig, {} if given is None else given, errors)
        rule = RULES.get(values.get("selection", RULES.reference))
        rule_mode = rule.perturb if rule is not None else PerturbConfig().mode
        perturb = _perturb_from(_pop_flat(values, "perturb", PERTURB_KEYS), rule_mode, errors)
        names = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
        known_keys = [*names, *SCORING_KEYS.values(), *PERTURB_KEYS.values()]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, known_keys, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                errors.append(f"unknown setting {key!r}{hint}")
        known = {k: v for k, v in values.items() if k in names}
        if scoring is not None:
            known["scoring"] = scoring
        return cls(**known, perturb=perturb, _extra_errors=tuple(errors))

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a TOML file (flat keys, or a [train] table; TRL's own fields in a [trl]
        table), then apply `overrides`."""
        path = Path(path)
        if not path.is_file():
            raise VepoInputError(f"config file not found: {path}")
        tomllib = _tomllib()
        try:
            values = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise VepoInputError(f"{path} is not valid TOML: {error}") from error
        if isinstance(values.get("train"), dict) and set(values) <= {"train", "trl"}:
            values = {**values.pop("train"), **values}  # [train] (and [trl]) tables
        return cls.from_dict({**values, **overrides})

    @classmethod
    def load_run(cls, run_dir: str | Path) -> TrainConfig:
        """The config a run folder was started with (config.toml)."""
        return cls.from_toml(Path(run_dir) / "config.toml")


def _tomllib():
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10
        import tomli

        return tomli
    except ImportError as error:  # pragma: no cover
        raise VepoInputError(
            "reading TOML needs Python >= 3.11 or the tomli package (pip install tomli); "
            "or pass every setting as a flag"
        ) from error


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        items = (f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")  # pragma: no cover


SCORING_KEYS: dict[str, str] = {
    "score_type": "score_type",
    "alpha": "alpha",
    "ratio": "ratio",
    "scope": "scope",
}
"""ScoringConfig field -> its flat key (temperature and seed are the run's own)."""

PERTURB_KEYS: dict[str, str] = {
    "mode": "perturb",
    "sigma": "sigma",
    "n_draws": "n_draws",
    "patch_size": "patch_size",
    "patch_prob": "patch_prob",
    "blur_radius": "blur_radius",
}
"""PerturbConfig field -> its flat key (the seed is the run's own)."""


def flat_scoring(scoring: ScoringConfig) -> dict[str, Any]:
    return {key: getattr(scoring, name) for name, key in SCORING_KEYS.items()}


def flat_perturb(perturb: PerturbConfig | None) -> dict[str, Any]:
    """The view under its flat keys; None (the rule's reference) writes perturb = ""."""
    out = {key: getattr(perturb or PerturbConfig(), name) for name, key in PERTURB_KEYS.items()}
    if perturb is None:
        out["perturb"] = ""
    return out


def _pop_flat(values: dict[str, Any], name: str, keys: dict[str, str]) -> Any:
    """The sub-config `name` out of `values`: a config, table or None under `name`, else
    its fields' flat keys (removed from `values`) as {field: value}."""
    given = values.get(name)
    if name in values and (given is None or isinstance(given, dict) or is_dataclass(given)):
        return values.pop(name)
    return {field_name: values.pop(key) for field_name, key in keys.items() if key in values}


def _sub_config(cls: type, given: Any, errors: list[str]):
    """`given` (a config, or {field: value}) as a `cls`, or None with its error noted."""
    if isinstance(given, cls):
        return given
    if not isinstance(given, dict):
        errors.append(f"{cls.__name__} settings must be a table, got {given!r}")
        return None
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        errors.append(f"unknown {cls.__name__} settings {unknown}")
        return None
    try:
        return cls(**given)
    except (ValueError, TypeError) as error:
        errors.append(str(error))
        return None


def _perturb_from(given: Any, rule_mode: str, errors: list[str]) -> PerturbConfig | None:
    """The view of `given` (None, a config, or {field: value} where mode "" or absent means
    the rule's `rule_mode`): None when it is the rule's reference view."""
    if given is None or isinstance(given, PerturbConfig):
        return given
    if isinstance(given, dict) and given.get("mode", "") == "":
        given = {k: v for k, v in given.items() if k != "mode"}
        defaults = PerturbConfig()
        if all(getattr(defaults, k, object()) == v for k, v in given.items()):
            return None
        given = {"mode": rule_mode, **given}
    if isinstance(given, dict) and given["mode"] not in MODES:
        errors.append(
            f"perturb={given['mode']!r} is not a counterfactual view; choose one of "
            f"{', '.join(MODES)} or leave it empty for the rule's reference"
        )
        return None
    return _sub_config(PerturbConfig, given, errors)


class _Checks:
    """Collects every problem of a config, each a sentence that says what to do."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg, self.errors = cfg, []

    def need_int(self, name: str, hint: str = "") -> bool:
        """An integer in INT_RANGES[name] (a float, even a whole one, is refused)."""
        value = getattr(self.cfg, name)
        lo, hi = INT_RANGES[name]
        if _is_number(value) and not _is_int(value):  # 1.5, 1e20, 40.0: never rounded
            self.errors.append(
                f"{name}={value!r} must be an integer in [{lo}, {hi}], "
                "written without a decimal point or exponent"
            )
            return False
        if not _is_int(value) or value < lo:
            self.errors.append(f"{name}={value!r} must be an integer >= {lo}{hint}")
            return False
        if value > hi:
            self.errors.append(f"{name}={value!r} is too large: it must be in [{lo}, {hi}]")
            return False
        return True

    def need_number(self, name: str, lo: float, hi: float, lo_open: bool = False, hint: str = ""):
        value = getattr(self.cfg, name)
        ok = _is_number(value) and math.isfinite(value)
        ok = ok and (value > lo if lo_open else value >= lo) and value <= hi
        if not ok:
            bracket = "(" if lo_open else "["
            self.errors.append(f"{name}={value!r} must be a number in {bracket}{lo}, {hi}]{hint}")

    def need_choice(self, name: str, choices, hint: str = "", value: Any = None) -> bool:
        """`value` (default: the field `name`) is one of `choices`."""
        value = getattr(self.cfg, name) if value is None else value
        if value not in choices:
            self.errors.append(f"{name}={value!r} is not one of {', '.join(choices)}{hint}")
            return False
        return True

    def need_bool(self, name: str) -> None:
        if not isinstance(getattr(self.cfg, name), bool):
            self.errors.append(f"{name}={getattr(self.cfg, name)!r} must be true or false")


def _validate(cfg: TrainConfig) -> list[str]:
    """Every problem with `cfg`, each a sentence that says what to do."""
    checks = _Checks(cfg)
    for part in (_check_run, _check_data, _check_grpo, _check_selection, _check_finetune):
        part(cfg, checks)
    return checks.errors


def _check_run(cfg: TrainConfig, c: _Checks) -> None:
    names = ("out", "model", "device", "data", "eval_data", "prompt_suffix", "lora_targets")
    for name in (*names, "report_to"):
        if not isinstance(getattr(cfg, name), str):
            c.errors.append(f"{name}={getattr(cfg, name)!r} must be a string")
    if isinstance(cfg.out, str) and not cfg.out.strip():
        c.errors.append("out is empty: give the run folder, e.g. runs/train/my-run")
    if isinstance(cfg.model, str) and not cfg.model.strip():
        c.errors.append('model is empty: use "tiny" (the embedded model), a folder or a hub id')
    c.need_choice("dtype", DTYPES)
    c.need_int("seed")
    c.need_int("threads")
    c.need_int("ckpt_every", " (0 = only at the end)")
    c.need_int("keep_checkpoints")
    c.need_bool("resume")
    if not isinstance(cfg.trl, dict) or not all(isinstance(k, str) for k in cfg.trl):
        c.errors.append(f"trl={cfg.trl!r} must be a table of GRPOConfig fields, e.g. [trl]")
    c.need_int("trace_every", " (0 = no traces)")
    c.need_int("trace_samples")


def _check_data(cfg: TrainConfig, c: _Checks) -> None:
    from vepo_viz.tasks import FAMILIES

    if isinstance(cfg.data, str) and cfg.data != "suite" and missing_data(cfg.data):
        c.errors.append(
            f'data={cfg.data!r}: no such file or folder; use "suite", a JSONL of prompts with '
            "reference answers (see `vepo_viz.tasks.export_jsonl` for the format), a "
            "datasets folder, Parquet, or a hub id in the local cache"
        )
    if isinstance(cfg.eval_data, str) and cfg.eval_data and missing_data(cfg.eval_data):
        c.errors.append(f"eval_data={cfg.eval_data!r}: no such file")
    for name in ("image_column", "question_column", "answer_column", "split"):
        if not isinstance(getattr(cfg, name), str):
            c.errors.append(f"{name}={getattr(cfg, name)!r} must be a string")
    c.need_choice("verifier", VERIFIERS)
    if not isinstance(cfg.families, tuple) or not all(isinstance(f, str) for f in cfg.families):
        c.errors.append(f"families={cfg.families!r} must be a list of family names")
    else:
        bad = [f for f in cfg.families if f not in FAMILIES]
        if bad:
            c.errors.append(f"unknown families {bad}; choose from {', '.join(FAMILIES)}")
    c.need_number("difficulty", 0.0, 1.0)
    c.need_int("n_eval")
    c.need_int("eval_every", " (0 = only before the first and after the last step)")


def _check_grpo(cfg: TrainConfig, c: _Checks) -> None:
    c.need_int("steps")
    c.need_int("prompts_per_step")
    c.need_int(
        "group_size",
        ": GRPO normalises advantages within a group of responses to one prompt, "
        "so it needs at least 2 (8 is typical)",
    )
    c.need_int("max_new_tokens")
    if _is_int(cfg.prompts_per_step) and _is_int(cfg.group_size):
        if cfg.prompts_per_step * cfg.group_size > MAX_ROLLOUT:
            c.errors.append(
                f"prompts_per_step x group_size = {cfg.prompts_per_step * cfg.group_size} "
                f"sequences per step is too many: at most {MAX_ROLLOUT}"
            )
    c.need_number(
        "temperature",
        0.0,
        10.0,
        lo_open=True,
        hint=" (sampling needs a temperature > 0; 1.0 is the reference)",
    )
    c.need_number("lr", 0.0, 1.0, lo_open=True, hint=" (e.g. 1e-5 full, 1e-4 LoRA)")
    c.need_int("warmup_steps")
    c.need_number("weight_decay", 0.0, 1.0)
    c.need_number("max_grad_norm", 0.0, math.inf, hint=" (0 = no clipping)")
    c.need_int("micro_batch_size")
    c.need_int("ppo_epochs")
    c.need_number("clip_eps", 0.0, 1.0)
    c.need_number("clip_eps_high", 0.0, 10.0)
    c.need_number("kl_beta", 0.0, math.inf, hint=" (0 = no KL term)")
    c.need_choice("adv_norm", ADV_NORMS)


def _check_selection(cfg: TrainConfig, c: _Checks) -> None:
    c.need_choice("loss_mode", ("mask", "weight"))
    c.need_number("weight_lambda", 0.0, math.inf)
    if c.need_choice("selection", RULES):
        rule = RULES[cfg.selection]
        if rule.score_types is not None and isinstance(cfg.scoring, ScoringConfig):
            c.need_choice(
                "score_type",
                SCORE_TYPES.names(rule.score_types),
                ' (for entropy-only or random selection set selection="entropy"/"random")',
                value=cfg.scoring.score_type,
            )
        if cfg.selection == "all" and cfg.loss_mode == "weight":
            c.errors.append(
                'loss_mode="weight" with selection="all" up-weights every token equally; '
                'use loss_mode="mask" (the same update) or pick a selection rule'
            )
        if isinstance(cfg.scoring, ScoringConfig):
            c.errors.extend(selection_problems(cfg))
    c.need_bool("vppo_rescale")
    if not isinstance(cfg.scoring, ScoringConfig):
        c.errors.append(f"scoring={cfg.scoring!r} must be a ScoringConfig")
    if cfg.perturb is not None and not isinstance(cfg.perturb, PerturbConfig):
        c.errors.append(f"perturb={cfg.perturb!r} must be a PerturbConfig or None (the rule's)")
    c.need_int("diagnostics_every")


def _check_finetune(cfg: TrainConfig, c: _Checks) -> None:
    c.need_choice("finetune", FINETUNE_MODES)
    c.need_int("lora_r")
    c.need_number("lora_alpha", 0.0, math.inf, lo_open=True)
    c.need_number("lora_dropout", 0.0, 1.0)
    c.need_bool("gradient_checkpointing")


def config_changes(
    old: TrainConfig, new: TrainConfig, safe: tuple[str, ...] = RESUME_SAFE
) -> list[str]:
    """The settings (flat keys) that differ between `old` and `new`, outside `safe`, each
    as "key: old -> new" in TOML notation; [] when a resume of `old` may go on as `new`."""
    a, b = old.to_dict(), new.to_dict()
    missing = object()
    changes = []
    for key in dict.fromkeys([*a, *b]):
        before, after = a.get(key, missing), b.get(key, missing)
        if key in safe or before == after:
            continue
        shown = ["(unset)" if v is missing else _toml_value(v) for v in (before, after)]
        changes.append(f"{key}: {shown[0]} -> {shown[1]}")
    return changes
