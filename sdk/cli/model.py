"""``shelfwise inspect`` (a bundle) and the back-office ``train``, ``evaluate``, ``export``.

The back-office commands live in ``shelfwise.training.cli`` and ``shelfwise.export.cli`` and
need torch (``pip install 'shelfwise[train]'``). They are imported only when run, so the
kiosk runtime (``import shelfwise.cli`` included) never loads torch; without the extra they
say so in one line and exit 2.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from ..model.bundle import read_bundle
from .exit_codes import ExitCode
from .output import emit, json_option
from .params import Folder, PublicKey

# Top-level modules the ``train`` extra brings; an ImportError naming another is a real bug.
TRAIN_EXTRA_MODULES = frozenset(
    {"torch", "onnx", "onnxscript", "tqdm", "matplotlib", "scipy", "pyarrow"}
)


@click.command()
@click.argument("bundle", type=Folder())
@click.option(
    "--public-key",
    type=PublicKey(),
    help="Also require a valid signature by this ed25519 key (hex).",
)
@json_option
def inspect(bundle: str, public_key: bytes | None, as_json: bool) -> None:
    """Verify a bundle (checksums, format, expiry, signature) and show its manifest.

    \b
    Example:
      shelfwise inspect bundle/ --json
    """
    files = read_bundle(bundle, public_key=public_key)
    manifest = files.manifest
    data = {
        "path": str(files.path),
        "verified": True,
        "signed": files.signed,
        "manifest": dict(manifest.__dict__),
        "items": len(files.items),
        "has_item_vectors": files.item_vectors is not None,
        "side_tables": {
            "cooccurrence_items": len(files.side_tables.cooccurrence),
            "popularity_scopes": len(files.side_tables.popularity),
            "repeat_items": len(files.side_tables.repeat_days),
        },
    }
    emit(
        as_json,
        data,
        f"{manifest.model_name}@{manifest.model_version}: {len(files.items)} items, "
        f"history {manifest.max_history}, quantization {manifest.quantization}, "
        f"{len(manifest.files)} files verified" + (", signed" if files.signed else ""),
    )


class MissingExtra(click.ClickException):
    """A back-office command ran without the ``train`` extra installed."""

    exit_code = ExitCode.BAD_INPUT


class BackOfficeCommand(click.Command):
    """Stands in for a command of ``shelfwise.training``/``shelfwise.export`` until it runs.

    ``shelfwise --help`` lists it from the short help given here; running it (``--help``
    included) imports the real command and hands it the arguments.
    """

    def __init__(self, name: str, target: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help, add_help_option=False)
        self.target = target

    def load(self) -> click.Command:
        """The real command (imports torch); ``MissingExtra`` without the ``train`` extra."""
        module_name, _, attribute = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = (exc.name or "").split(".")[0]
            if missing not in TRAIN_EXTRA_MODULES:
                raise
            raise MissingExtra(
                f"shelfwise {self.name} needs the train extra ({missing} is not installed): "
                "pip install 'shelfwise[train]'"
            ) from exc
        command: click.Command = getattr(module, attribute)
        return command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.load().make_context(info_name, args, parent=parent, **extra)


BACK_OFFICE = [
    BackOfficeCommand(
        "train",
        "shelfwise.training.cli:train_command",
        "[train extra] Train the recommender on a transaction log.",
    ),
    BackOfficeCommand(
        "evaluate",
        "shelfwise.training.cli:evaluate_command",
        "[train extra] Evaluate a run against the baselines.",
    ),
    BackOfficeCommand(
        "export",
        "shelfwise.export.cli:export_command",
        "[train extra] Export a run as a model bundle.",
    ),
]

COMMANDS: list[click.Command] = [inspect, *BACK_OFFICE]

__all__ = ["BACK_OFFICE", "COMMANDS", "BackOfficeCommand", "MissingExtra"]
