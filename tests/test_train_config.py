"""Training config: validation messages, TOML round trip, CLI flags, data order."""

from __future__ import annotations

import argparse
import json

import pytest

from vepo_viz.errors import VepoInputError
from vepo_viz.train.cli import config_from_args, register
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.data import PromptSource, load_jsonl


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"group_size": 1}, "group_size=1 must be an integer >= 2: GRPO normalises"),
        ({"selection": "topk"}, "selection='topk' is not one of all, entropy, vepo, vppo, random"),
        ({"score_type": "entropy"}, 'set selection="entropy"/"random"'),
        ({"ratio": 0.0}, "ratio=0.0 must be a number in (0.0, 1.0]"),
        ({"ratio": 1.5}, "ratio=1.5"),
        ({"temperature": 0}, "sampling needs a temperature > 0"),
        ({"lr": -1e-5}, "lr=-1e-05"),
        ({"steps": 0}, "steps=0 must be an integer >= 1"),
        ({"steps": 2.5}, "steps=2.5 must be an integer"),
        ({"perturb": "noise"}, "perturb='noise' is not a counterfactual view"),
        ({"scope": "global"}, "scope='global' is not one of response, batch, quantile"),
        ({"scope": "quantile"}, 'scope="response", the reference) or of the whole batch'),
        (
            {"scope": "quantile", "selection": "entropy", "ratio": 0.3},
            'entropy quantile set selection="all" and top_entropy_quantile in the [trl] table '
            "(--trl top_entropy_quantile=0.3)",
        ),
        ({"trl": {"top_entropy_quantile": 0.2}}, "on top of the 'vepo' rule's"),
        ({"families": ("color", "shapes")}, "unknown families ['shapes']"),
        ({"data": "/no/such.jsonl"}, "no such file"),
        ({"loss_mode": "weight", "selection": "all"}, 'use loss_mode="mask"'),
        ({"finetune": "qlora"}, "finetune='qlora' is not one of auto, full, lora"),
        ({"model": " "}, 'model is empty: use "tiny"'),
        ({"resume": "yes"}, "resume='yes' must be true or false"),
        ({"keep_checkpoints": 0}, "keep_checkpoints=0 must be an integer >= 1"),
    ],
)
def test_bad_configs_are_rejected_with_clear_messages(changes, message):
    with pytest.raises(VepoInputError) as info:
        TrainConfig.from_dict(changes)
    assert message in str(info.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(VepoInputError) as info:
        TrainConfig.from_dict({"group_size": 0, "ratio": 2.0, "selektion": "vepo"})
    text = str(info.value)
    assert "group_size=0" in text and "ratio=2.0" in text
    assert "unknown setting 'selektion' (did you mean 'selection'?)" in text


def test_defaults_are_the_vepo_reference():
    cfg = TrainConfig()
    sc = cfg.scoring
    assert (cfg.selection, sc.score_type, sc.alpha, sc.ratio, sc.scope) == (
        "vepo",
        "D",
        0.7,
        0.2,
        "response",
    )
    view = cfg.perturb_config
    assert view.mode == "gaussian" and view.sigma == 2.0 and cfg.loss_mode == "mask"
    assert TrainConfig(selection="vppo").perturb_config.mode == "patch"
    assert (
        TrainConfig.from_dict({"selection": "vppo", "perturb": "gaussian"}).perturb_config.mode
        == "gaussian"
    )


def test_toml_round_trip_and_overrides(tmp_path):
    cfg = TrainConfig(selection="entropy", families=("color", "count"), kl_beta=0.01, steps=7)
    path = tmp_path / "run.toml"
    path.write_text(cfg.to_toml())
    assert TrainConfig.from_toml(path) == cfg
    assert TrainConfig.from_toml(path, steps=9).steps == 9
    # a [train] table is accepted too
    table = tmp_path / "table.toml"
    table.write_text('[train]\nselection = "random"\nsteps = 3\n')
    assert TrainConfig.from_toml(table).selection == "random"


def test_bad_toml_file_messages(tmp_path):
    with pytest.raises(VepoInputError, match="config file not found"):
        TrainConfig.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(VepoInputError, match="is not valid TOML"):
        TrainConfig.from_toml(bad)


def _parse(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_cli_flags_override_the_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('selection = "entropy"\nsteps = 5\nfamilies = ["color"]\n')
    args = _parse(["--config", str(path), "--steps", "8", "--vppo-rescale", "false"])
    cfg = config_from_args(args)
    assert (cfg.selection, cfg.steps, cfg.families, cfg.vppo_rescale) == (
        "entropy",
        8,
        ("color",),
        False,
    )
    cfg = config_from_args(_parse(["--selection", "random", "--families", "count", "read"]))
    assert cfg.selection == "random" and cfg.families == ("count", "read")


def test_cli_reports_bad_config_without_traceback(capsys):
    args = _parse(["--group-size", "1"])
    assert args.func(args) == 2
    assert "error: invalid training config: group_size=1" in capsys.readouterr().err


def test_scopes_training_cannot_honour_are_refused_not_mapped(capsys):
    """scope "quantile" (the Analyze tab's) is refused by the command with what to use
    instead; TRL's own entropy quantile is named as TRL names it, with selection "all"."""
    args = _parse(["--selection", "entropy", "--scope", "quantile", "--print-config"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "error: invalid training config: scope='quantile' is not a training scope" in err
    assert "--trl top_entropy_quantile=0.2" in err
    args = _parse(["--selection", "entropy", "--trl", "top_entropy_quantile=0.2"])
    assert args.func(args) == 2 and 'use it with selection="all"' in capsys.readouterr().err
    for argv in (["--scope", "batch"], ["--selection", "all", "--trl", "top_entropy_quantile=0.2"]):
        args = _parse([*argv, "--print-config"])
        assert args.func(args) == 0, argv
    out = capsys.readouterr().out
    assert 'scope = "batch"' in out and 'trl = {"top_entropy_quantile" = 0.2}' in out
    assert TrainConfig(trl={"top_entropy_quantile": 1.0}).selection == "vepo"  # 1.0: TRL's off
    train = register(argparse.ArgumentParser().add_subparsers())
    scope_help = " ".join(train.format_help().split()).rsplit("--scope SCOPE", 1)[1][:200]
    assert "Choices: response, batch." in scope_help and "quantile" not in scope_help


def test_cli_print_config(capsys):
    args = _parse(["--selection", "vppo", "--print-config"])
    assert args.func(args) == 0
    assert 'selection = "vppo"' in capsys.readouterr().out


def test_suite_prompts_are_a_pure_function_of_the_step():
    cfg = TrainConfig(prompts_per_step=4, families=("color", "count"))
    a, b = PromptSource(cfg), PromptSource(cfg)
    assert [p.id for p in a.step_prompts(3)] == [p.id for p in b.step_prompts(3)]
    assert {p.family for p in a.step_prompts(0)} == {"color", "count"}
    seen = [p.id for s in range(5) for p in a.step_prompts(s)]
    assert len(seen) == len(set(seen))  # no repeats across steps
    held = {p.id for p in a.heldout()}
    assert not held & set(seen) and len(held) == 2 * cfg.n_eval


def test_jsonl_source_shuffles_per_epoch_deterministically(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "im.png")
    rows = [
        {"image": "im.png", "question": f"q{i}", "answer": "red", "answer_space": ["red", "blue"]}
        for i in range(5)
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = load_jsonl(data)
    assert prompts[0].reward("so the answer is red.") == (1.0, True, True)
    assert prompts[0].reward("so the answer is blue.") == (0.1, False, True)
    assert prompts[0].reward("red") == (0.0, False, False)
    cfg = TrainConfig(data=str(data), prompts_per_step=5, eval_data=str(data), n_eval=3)
    src = PromptSource(cfg)
    epoch0 = [p.question for p in src.step_prompts(0)]
    assert sorted(epoch0) == [f"q{i}" for i in range(5)]
    assert epoch0 == [p.question for p in PromptSource(cfg).step_prompts(0)]
    assert len(src.heldout()) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "im.png", "question": "q"}) + "\n")
    with pytest.raises(VepoInputError, match="lacks answer"):
        load_jsonl(bad)


def test_exported_suite_jsonl_keeps_its_examples(tmp_path):
    from vepo_viz.tasks import export_jsonl

    path = export_jsonl(tmp_path / "suite.jsonl", split="train", n_per_family=1)
    prompts = load_jsonl(path)
    assert all(p.example is not None and p.example.question == p.question for p in prompts)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["answer"] = "something else"  # edited row: no longer the suite example
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_jsonl(path)[0].example is None


def test_trl_table_from_toml_flags_and_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'steps = 3\n[trl]\nuse_vllm = true\nvllm_mode = "colocate"\n'
        "vllm_gpu_memory_utilization = 0.3\n"
    )
    cfg = TrainConfig.from_toml(path)
    assert cfg.steps == 3
    assert cfg.trl == {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": 0.3,
    }
    (tmp_path / "again.toml").write_text(cfg.to_toml())
    assert TrainConfig.from_toml(tmp_path / "again.toml") == cfg  # config.toml of a run
    both = tmp_path / "both.toml"
    both.write_text('[train]\nsteps = 4\n[trl]\nvllm_mode = "server"\n')
    assert TrainConfig.from_toml(both).trl == {"vllm_mode": "server"}
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--config", str(path), "--trl", "use_vllm=false",
                              "--trl", "vllm_mode=colocate", "--trl", "report_to=[\"wandb\"]"])  # fmt: skip
    assert config_from_args(args).trl == {
        "use_vllm": False,
        "vllm_mode": "colocate",
        "report_to": ["wandb"],
    }  # the flag's table replaces the file's
    with pytest.raises(VepoInputError, match="trl=.* must be a table"):
        TrainConfig(trl="use_vllm=true")
