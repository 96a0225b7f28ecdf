"""`iter_records`: the rows of a `DataSource` as `Record`s, checked one by one.

Which columns are read is settled first (`DataColumns`, or the common names), so a bad
column name fails before any row is read, with the list of columns there are. Then rows
stream in, each checked as it comes (today's JSONL messages: line numbers, "needs a
non-empty string 'question'", duplicate ids). Geometry3K-style "<image>" placeholders are
removed from questions: the model's chat template places the image itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vepo_viz.data import columns as cols
from vepo_viz.data.readers import DataSource
from vepo_viz.data.records import Record, file_digest, image_cell
from vepo_viz.errors import VepoInputError

IMAGE_PLACEHOLDER = "<image>"
"""Removed from questions (datasets such as Geometry3K mark the image's place with it)."""


# ---- columns --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    image: str
    question: str
    answer: str | None
    response: str | None
    id: str | None
    family: str | None
    options: str | None
    extra: tuple[str, ...]

    def names(self) -> list[str]:
        named = [self.image, self.question, self.answer, self.response, self.id, self.family]
        return list(dict.fromkeys(n for n in [*named, self.options, *self.extra] if n))


def _plan_columns(
    source: DataSource, columns: cols.DataColumns, response: str, extra: tuple[str, ...]
) -> _Plan:
    present, where = source.present, source.name
    if columns.answer_column:
        cols.pick_column(present, columns.answer_column, (), "answer", where)
    for name in extra:
        if name not in present:
            raise VepoInputError(
                f"{where} has no column {name!r} to group by; its columns are: {', '.join(present)}"
            )
    return _Plan(
        image=cols.pick_column(present, columns.image_column, cols.IMAGE_NAMES, "image", where),
        question=cols.pick_column(
            present, columns.question_column, cols.QUESTION_NAMES, "question", where
        ),
        answer=cols.optional_column(present, columns.answer_column, cols.ANSWER_NAMES),
        response=_response_column(source, response),
        id=cols.optional_column(present, "", cols.ID_NAMES),
        family=cols.optional_column(present, "", cols.FAMILY_NAMES),
        options=cols.optional_column(present, "", cols.OPTION_NAMES),
        extra=tuple(e for e in extra if e != "family"),
    )


def _response_column(source: DataSource, response: str) -> str | None:
    if response in source.present or (source.jsonl and response):
        return response  # JSONL: optional on each line
    if response != "response":
        cols.pick_column(source.present, response, (), "response", source.name)
    return None


def iter_records(
    source: DataSource,
    columns: cols.DataColumns | None = None,
    *,
    response_column: str = "response",
    max_rows: int | None = None,
    extra: tuple[str, ...] = (),
    keep_images: bool = True,
    only: set[str] | frozenset[str] | None = None,
) -> Iterator[Record]:
    """The first `max_rows` rows of `source` (all when None), as Records.

    Args:
        columns: the column mapping, split and verifier (default: the common names).
        response_column: the column of responses to score, if the data has it.
        extra: other columns to carry (e.g. the --group-by column).
        keep_images: False drops the image bytes (the digest stays): a light record.
        only: yield only the rows with these keys (the others are still read and checked).
    """
    columns = columns or cols.DataColumns()
    plan = _plan_columns(source, columns, response_column, extra)
    cap = max_rows if max_rows is not None else source.limit
    seen: set[str] = set()
    index = 0
    for chunk in source.batches(plan.names()):
        for raw in chunk:
            if cap is not None and index >= cap:
                return
            where = raw.get("__where__") or f"{source.name} row {index}"
            record = _record(raw, plan, source, index, where, columns.verifier, keep_images)
            if record.key in seen:
                raise VepoInputError(f"{where}: duplicate id {record.key!r}")
            seen.add(record.key)
            index += 1
            if only is None or record.key in only:
                yield record
    if index == 0:
        raise VepoInputError(f"{source.name} holds no examples")


def _text(raw: dict[str, Any], name: str | None, where: str) -> str | None:
    value = raw.get(name) if name else None
    if value is None:
        return None
    if not isinstance(value, str):
        raise VepoInputError(f"{where}: {name!r} must be a string")
    return value


def _record(
    raw: dict[str, Any],
    plan: _Plan,
    source: DataSource,
    index: int,
    where: str,
    verifier: str,
    keep_images: bool,
) -> Record:
    question = raw.get(plan.question)
    if isinstance(question, str):
        question = question.replace(IMAGE_PLACEHOLDER, "").strip()
    if not isinstance(question, str) or not question:
        raise VepoInputError(f"{where}: needs a non-empty string {plan.question!r}")
    cell = raw.get(plan.image)
    if cell is None or cell == "" or cell == []:
        raise VepoInputError(f"{where}: needs a non-empty string {plan.image!r} (the image)")
    path, data = image_cell(cell, source.base, where)
    answer = raw.get(plan.answer) if plan.answer else None
    if isinstance(answer, (list, tuple)):
        answer = answer[0] if answer else None
    options = raw.get(plan.options) if plan.options else None
    key = raw.get(plan.id) if plan.id else None
    family = raw.get(plan.family) if plan.family else None
    if verifier == "auto" and plan.options == "answer_space":
        verifier = "suite"  # the suite's export format: its template and answer space
    return Record(
        index=index,
        key=f"row-{index}" if key is None else str(key),
        image=path,
        question=question,
        response=_text(raw, plan.response, where),
        family=None if family is None else str(family),
        answer=None if answer is None else str(answer),
        image_bytes=data if keep_images else None,
        options=tuple(str(o) for o in options) if options else None,
        extra=tuple((name, str(raw.get(name))) for name in plan.extra),
        verifier=verifier,
        digest=hashlib.sha256(data).hexdigest() if data is not None else file_digest(path),
        where=where,
    )
