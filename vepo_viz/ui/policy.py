"""What a user of the served app may do: the serving policy, built once from the launch flags.

On this machine only (127.0.0.1, no --share) everything stays allowed, as before. Served
beyond it (another --host, or --share), training from the app is off unless --allow-train,
and a user may choose only the embedded model, the --model given at start and the
--models the administrator lists. Every other name gets the same message (`REFUSED_MODEL`),
decided from the string alone before anything reads the disk or the network, so the
answers cannot be used to probe the server's files. `PolicyBackend` applies the model rule
to every model run of the app (Analyze, Compare, Batch).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vepo_viz.ui.backend import EMBEDDED, Backend, model_key
from vepo_viz.ui.errors import UserFacingError

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

REFUSED_MODEL = (
    "this server does not offer that model: choose one of the models listed in the About tab"
)
"""The one answer for every model a user may not choose (existing or not, path or hub id)."""

REFUSED_TRAIN = (
    "training from the app is switched off on this server "
    "(whoever runs it can start it with --allow-train)"
)

REFUSED_TRAIN_PATHS = (
    "on this server a run writes only under its runs folder and trains on the built-in suite "
    "(out, data and eval_data cannot be set)"
)

REFUSED_TRAIN_TRL = (
    "on this server a run cannot set TRL options ([trl] table): they reach logging services, "
    "vLLM servers and files the server does not vet"
)

TRAIN_ALIASES = ("tiny",)
"""Names the Train tab accepts for the embedded model (besides model_key's)."""


class ModelRefused(UserFacingError):
    """A model the policy does not allow (always with the message REFUSED_MODEL)."""

    def __init__(self) -> None:
        super().__init__(REFUSED_MODEL)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (no name lookup: other names are remote)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _absolute(name: str) -> str:
    return os.path.normpath(os.path.abspath(name))


def _inside(path: str, folder: str) -> bool:
    return _absolute(path).startswith(_absolute(folder).rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class ServingPolicy:
    """The rules the app serves under (shown in the About tab)."""

    host: str = "127.0.0.1"
    """The interface the app binds."""
    share: bool = False
    """True when a public gradio.live link is open too."""
    login: bool = False
    """True when users log in (--auth / --auth-file)."""
    allow_train: bool = True
    """True when the Train tab may start and stop training processes."""
    models: tuple[str, ...] | None = None
    """Models a user may choose besides the embedded one (names as given); None: any."""
    model_folders: tuple[str, ...] = ()
    """Folders whose sub-folders are models a user may choose (only when `models` is set)."""

    def __post_init__(self) -> None:
        if self.models is None and self.model_folders:
            raise ValueError("model_folders restrict the models: give models=() with them")

    @property
    def remote(self) -> bool:
        """True when the app is reachable beyond this machine."""
        return self.share or not is_loopback(self.host)

    @classmethod
    def from_launch(
        cls,
        host: str = "127.0.0.1",
        share: bool = False,
        model: str = EMBEDDED,
        models: Iterable[str] | None = None,
        allow_train: bool | None = None,
        login: bool = False,
        runs_root: str | Path | None = None,
    ) -> ServingPolicy:
        """The policy of `python app.py` with these flags. `models`: names, hub ids,
        model folders, or folders of model folders (a folder without a config.json);
        `runs_root`: where the Train tab writes runs (their models are allowed when
        training is)."""
        remote = share or not is_loopback(host)
        allow_train = (not remote) if allow_train is None else bool(allow_train)
        given = [m.strip() for m in (models or ()) if m and m.strip()]
        if not remote and not given:
            return cls(host, share, login, allow_train)
        names = [] if model_key(model) is None else [model.strip()]
        folders = []
        for entry in given:  # the administrator's names: looking at the disk is fine here
            folder = Path(entry).expanduser()
            if folder.is_dir() and not (folder / "config.json").is_file():
                folders.append(_absolute(str(folder)))
            elif model_key(entry) is not None:
                names.append(entry)
        if allow_train and runs_root is not None:
            folders.append(_absolute(str(runs_root)))
        return cls(host, share, login, allow_train, tuple(dict.fromkeys(names)), tuple(folders))

    def allows_model(self, name: str | None) -> bool:
        """True when a user may choose `name` (decided from the string alone)."""
        key = model_key(name)
        if key is None or self.models is None:
            return True
        if key in self.models:  # exactly as listed in the About tab
            return True
        if any(c in key for c in "\0\n\r") or ".." in Path(key).parts or key.startswith("~"):
            return False
        return any(_inside(key, folder) for folder in self.model_folders)

    def check_model(self, name: str | None) -> None:
        """Raise the one refusal message unless a user may choose `name`."""
        if not self.allows_model(name):
            raise ModelRefused()

    def check_train(self) -> None:
        """Raise unless the app may start or stop training processes."""
        if not self.allow_train:
            raise UserFacingError(REFUSED_TRAIN)

    def check_train_run(
        self,
        model: str,
        out: str,
        runs_root: str | Path,
        data_paths: Iterable[str] = (),
        trl_table: dict | None = None,
    ) -> None:
        """Raise unless a run of `model` writing to `out`, reading `data_paths` and setting
        the TRL options `trl_table` may start."""
        self.check_train()
        self.check_model(EMBEDDED if model.strip().lower() in TRAIN_ALIASES else model)
        if self.models is not None and (not _inside(out, runs_root) or any(data_paths)):
            raise UserFacingError(REFUSED_TRAIN_PATHS)
        if self.models is not None and trl_table:
            raise UserFacingError(REFUSED_TRAIN_TRL)

    @property
    def warning(self) -> str | None:
        """What the start-up log and the page's banner say when anyone can walk in."""
        if not self.remote or self.login:
            return None
        where = "a public gradio.live link" if self.share else f"{self.host} (the network)"
        return (
            f"vepo-viz is served on {where} WITHOUT a login: anyone who reaches it can use it. "
            "Start it with --auth user:password or --auth-file FILE (or VEPO_VIZ_AUTH_FILE)."
        )

    def describe(self) -> str:
        """The policy as Markdown, for the About tab."""
        where = "this machine only" if not self.remote else "beyond this machine"
        if self.share:
            where += " (a public gradio.live link)"
        if self.models is None:
            models = "any: `embedded`, a model folder or a hub id"
        else:
            listed = [f"`{EMBEDDED}`", *(f"`{m}`" for m in self.models)]
            listed += [f"folders inside `{f}`" for f in self.model_folders]
            models = ", ".join(listed)
        train = "allowed" if self.allow_train else "switched off (--allow-train turns it on)"
        return (
            "### Serving policy\n\n"
            f"- served to: {where} (`{self.host}`)\n"
            f"- login: {'required' if self.login else 'none'}\n"
            f"- training from the app: {train}\n"
            f"- models a user may choose: {models}\n"
        )


class PolicyBackend:
    """A Backend that refuses the models the policy does not allow, before `inner` sees them."""

    def __init__(self, inner: Backend, policy: ServingPolicy) -> None:
        self.inner = inner
        self.policy = policy

    def analyze(
        self, model_name, image, question, response, settings, progress=None
    ) -> TokenAnalysis:
        self.policy.check_model(model_name)
        return self.inner.analyze(model_name, image, question, response, settings, progress)

    def analyze_group(self, model_name, image, question, progress=None, **kwargs) -> Any:
        self.policy.check_model(model_name)
        return self.inner.analyze_group(model_name, image, question, progress, **kwargs)

    def __getattr__(self, name: str) -> Any:  # e.g. ModelBackend.model, FakeBackend.calls
        return getattr(self.inner, name)
