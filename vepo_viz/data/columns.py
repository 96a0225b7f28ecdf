"""Which columns of a dataset hold the image, the question, the answer: `DataColumns`.

The defaults ("" = guess) pick the first of the common names a dataset has (Geometry3K's
`images`/`problem`/`answer`, the suite's `image`/`question`/`answer`, ...), so most
datasets need no flag. A name that is not there gets a message listing the columns that
are, with the flag to pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vepo_viz.data.verifiers import VERIFIERS
from vepo_viz.errors import VepoInputError

IMAGE_NAMES = ("images", "image", "image_path", "img", "decoded_image")
QUESTION_NAMES = ("problem", "question", "query", "prompt", "text")
ANSWER_NAMES = ("answer", "solution", "ground_truth", "label", "gt_answer")
OPTION_NAMES = ("answer_space", "choices", "options")
ID_NAMES = ("id", "pid", "question_id", "idx")
FAMILY_NAMES = ("family",)


@dataclass(frozen=True)
class DataColumns:
    """How to read a dataset: its columns, split and answer verifier."""

    image_column: str = ""
    """Column holding the image (bytes, a path, a {"bytes", "path"} dict or a list of them:
    the first is used); "" = the first of images, image, image_path, img."""
    question_column: str = ""
    """Column holding the question; "" = the first of problem, question, query, prompt."""
    answer_column: str = ""
    """Column holding the reference answer; "" = the first of answer, solution,
    ground_truth, label (none: no correctness is reported)."""
    split: str = ""
    """Split of a `datasets` folder or hub dataset; "" = train when there is one, else the
    first."""
    verifier: str = field(default="auto", metadata={"registry": VERIFIERS})
    """How a response is checked against the answer (an entry of data.VERIFIERS)."""

    def __post_init__(self) -> None:
        for name in ("image_column", "question_column", "answer_column", "split"):
            if not isinstance(getattr(self, name), str):
                raise VepoInputError(f"{name} must be a string, got {getattr(self, name)!r}")
        VERIFIERS.check(self.verifier)


def pick_column(
    present: list[str], wanted: str, candidates: tuple[str, ...], what: str, where: str
) -> str:
    """`wanted` if it is a column, else (wanted == "") the first candidate present;
    VepoInputError listing the columns there are otherwise."""
    if wanted:
        if wanted in present:
            return wanted
        raise VepoInputError(
            f"{where} has no {what} column {wanted!r}; its columns are: {', '.join(present)} "
            f"(pass --{what}-column NAME)"
        )
    for name in candidates:
        if name in present:
            return name
    raise VepoInputError(
        f"{where} has no {what} column (looked for {', '.join(candidates)}); its columns are: "
        f"{', '.join(present) or 'none'} (pass --{what}-column NAME)"
    )


def optional_column(present: list[str], wanted: str, candidates: tuple[str, ...]) -> str | None:
    """Like `pick_column` for a column a dataset may lack: None when absent."""
    if wanted:
        return wanted if wanted in present else None
    return next((name for name in candidates if name in present), None)
