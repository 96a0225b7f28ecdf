"""`open_data`: one reader for batch scoring, training and evaluation.

It accepts
- "suite": the procedural suite's held-out examples (images in memory);
- a `datasets` folder (`Dataset.save_to_disk`, or a `DatasetDict`'s with its splits);
- a Parquet file, a folder or glob of Parquet shards, or a hub dataset id found in the
  local hub cache (offline: `huggingface_hub.snapshot_download(local_files_only=True)`);
- a JSONL file (today's format: image paths relative to the file; or inline images).

Rows stream: Parquet through `pyarrow`'s `iter_batches`, `datasets` folders memory-mapped
in batches of `BATCH_ROWS`, JSONL line by line, so a 100,000-row dataset is never in
memory at once; only the columns a run needs are read.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vepo_viz.data.records import png_bytes
from vepo_viz.errors import VepoInputError

BATCH_ROWS = 64
"""Rows read from Parquet / Arrow at a time."""
SUITE_PER_FAMILY = 20
"""Held-out examples per family of the "suite" source when no --max-rows is given."""
SUITE_UNBOUNDED = 10**6
"""Held-out examples per family the "suite" source can give with --max-rows (generated lazily)."""
_HUB_ID_RE = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class DataSource:
    """A dataset opened for reading: what it is, its columns, and its rows as a stream."""

    identity: str
    """Names the data (kind, resolved location, split): a resumed run must see the same."""
    present: list[str]
    """The columns the data has."""
    n_rows: int | None
    """How many rows it has (None: unknown until read)."""
    batches: Callable[[list[str]], Iterator[list[dict[str, Any]]]] = field(repr=False)
    """batches(columns) -> lists of {column: value} (only those columns)."""
    base: Path = Path(".")
    """Folder that relative image paths are resolved against."""
    name: str = "data"
    """For messages: the file or folder name."""
    jsonl: bool = False
    """Checks and messages of today's JSONL format (line numbers)."""
    limit: int | None = None
    """Rows read when no max_rows is given (the suite is unbounded; None: all)."""


def open_data(spec: str | Path, split: str = "") -> DataSource:
    """Open `spec` (see the module docstring) without reading its rows."""
    text = str(spec)
    if text == "suite":
        return _suite_source()
    path = Path(text).expanduser()
    if any(ch in text for ch in "*?[") and not path.exists():
        files = sorted(Path(p) for p in glob.glob(text, recursive=True))
        if not files:
            raise VepoInputError(f"dataset not found: no file matches {text}")
        return _parquet_source(files, text, split)
    if path.is_dir():
        return _folder_source(path, split)
    if path.is_file():
        if path.suffix.lower() == ".parquet":
            return _parquet_source([path], str(path.resolve()), "")
        return _jsonl_source(path)
    if _HUB_ID_RE.match(text):
        return open_hub(text, split)
    raise VepoInputError(f"dataset not found: {spec}")


def missing_data(spec: str) -> bool:
    """Whether `spec` names no data at all (a cheap check, before any reading): not
    "suite", no such path, no file matching a glob, and not a hub id."""
    looks_like_file = spec.lower().endswith((".jsonl", ".json", ".parquet"))
    hub_id = _HUB_ID_RE.match(spec) and not looks_like_file
    if spec == "suite" or Path(spec).expanduser().exists() or hub_id:
        return False
    return not (any(ch in spec for ch in "*?[") and glob.glob(spec, recursive=True))


def open_hub(repo_id: str, split: str = "") -> DataSource:
    """A hub dataset from the local hub cache only (offline; never a local path)."""
    if not _HUB_ID_RE.match(repo_id):
        raise VepoInputError(f"{repo_id!r} is not a hub dataset id (owner/name)")
    return _folder_source(_hub_snapshot(repo_id), split, identity=f"hub:{repo_id}")


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", local_files_only=True))
    except Exception as error:  # noqa: BLE001 - any miss means "not in the cache"
        raise VepoInputError(
            f"dataset not found: {repo_id} is neither a path nor a dataset in the local hub "
            "cache; download it once (huggingface-cli download --repo-type dataset "
            f"{repo_id}) or save it with Dataset.save_to_disk and pass the folder"
        ) from error


# ---- folders: datasets save_to_disk, or Parquet shards ----------------------------------


def _folder_source(path: Path, split: str, identity: str | None = None) -> DataSource:
    if (path / "dataset_dict.json").is_file():
        names = json.loads((path / "dataset_dict.json").read_text())["splits"]
        chosen = _choose_split(names, split, path)
        return _arrow_source(path / chosen, f"datasets:{path.resolve()}[{chosen}]")
    if (path / "state.json").is_file():
        return _arrow_source(path, f"datasets:{path.resolve()}")
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise VepoInputError(
            f"{path} is not a dataset: no dataset_dict.json or state.json (Dataset."
            "save_to_disk) and no .parquet files"
        )
    return _parquet_source(files, identity or str(path.resolve()), split)


def _split_of(file: Path) -> str:
    stem = file.name.split("-")[0].split(".")[0]
    return stem if stem in ("train", "test", "validation", "val", "dev") else file.parent.name


def _choose_split(names: list[str], split: str, where: Path | str) -> str:
    if split:
        if split not in names:
            raise VepoInputError(
                f"{where} has no split {split!r}; its splits are: {', '.join(names)} "
                "(pass --split NAME)"
            )
        return split
    return "train" if "train" in names else names[0]


def _arrow_source(folder: Path, identity: str) -> DataSource:
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_from_disk(str(folder))

    def batches(names: list[str]) -> Iterator[list[dict[str, Any]]]:
        table = ds.select_columns(names).with_format("arrow")
        for chunk in table.iter(batch_size=BATCH_ROWS):
            yield chunk.to_pylist()

    return DataSource(identity, list(ds.column_names), len(ds), batches, folder, folder.name)


def _parquet_source(files: list[Path], identity: str, split: str) -> DataSource:
    import pyarrow.parquet as pq

    splits = sorted({_split_of(f) for f in files})
    if len(splits) > 1 or split:
        chosen = _choose_split(splits, split, identity)
        files = [f for f in files if _split_of(f) == chosen]
        identity = f"{identity}[{chosen}]"
    opened = [pq.ParquetFile(f) for f in files]

    def batches(names: list[str]) -> Iterator[list[dict[str, Any]]]:
        for handle in opened:
            for chunk in handle.iter_batches(batch_size=BATCH_ROWS, columns=names):
                yield chunk.to_pylist()

    present = list(opened[0].schema_arrow.names)
    n_rows = sum(h.metadata.num_rows for h in opened)
    return DataSource(identity, present, n_rows, batches, files[0].parent, files[0].name)


# ---- JSONL -------------------------------------------------------------------------------


def _jsonl_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise VepoInputError(f"{where}: not valid JSON ({error.msg})") from error
                if not isinstance(record, dict):
                    raise VepoInputError(f"{where}: each line must be a JSON object")
                yield line_no, {**record, "__where__": where}
    except UnicodeDecodeError as error:
        raise VepoInputError(f"{path} is not UTF-8 text (byte {error.start})") from error


def _jsonl_source(path: Path) -> DataSource:
    first = next(_jsonl_lines(path), None)
    if first is None:
        raise VepoInputError(f"{path} holds no examples")

    def batches(names: list[str]) -> Iterator[list[dict[str, Any]]]:
        chunk: list[dict[str, Any]] = []
        for _, record in _jsonl_lines(path):
            chunk.append({n: record.get(n) for n in [*names, "__where__"]})
            if len(chunk) == BATCH_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    present = [k for k in first[1] if k != "__where__"]
    for name in ("image", "question", "response", "answer", "family", "id"):
        if name not in present:
            present.append(name)  # today's format: optional on each line
    n_rows = None
    return DataSource(str(path.resolve()), present, n_rows, batches, path.parent, path.name, True)


# ---- the suite ---------------------------------------------------------------------------


def _suite_source() -> DataSource:
    from vepo_viz.tasks import FAMILIES, iter_split

    def batches(names: list[str]):
        for ex in iter_split("heldout", SUITE_UNBOUNDED):
            yield [
                {
                    "id": f"heldout-{ex.family}-{ex.seed}",
                    "image": png_bytes(ex.image),
                    "question": ex.question,
                    "answer": ex.answer,
                    "answer_space": list(ex.answer_space),
                    "family": ex.family,
                    "difficulty": ex.difficulty,
                }
            ]

    present = ["id", "image", "question", "answer", "answer_space", "family", "difficulty"]
    n_rows = SUITE_PER_FAMILY * len(FAMILIES)
    return DataSource("suite", present, n_rows, batches, name="suite", limit=n_rows)
