"""The accelerate / DeepSpeed config files shipped with the package parse with the pinned
accelerate and describe what docs/train_gpu.md says they do."""

from pathlib import Path

import pytest

import vepo_viz.train

CONFIGS = Path(vepo_viz.train.__file__).parent / "configs"


@pytest.mark.parametrize(
    "name, distributed, processes",
    [
        ("single_gpu", "NO", 1),
        ("multi_gpu_ddp", "MULTI_GPU", 8),
        ("deepspeed_zero3", "DEEPSPEED", 8),
    ],
)
def test_config_files_load_with_accelerate(name, distributed, processes):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.name == distributed
    assert config.num_processes == processes
    if distributed == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 3
