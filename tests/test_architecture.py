"""The layout holds: the public surface is pinned, nothing imports in a circle, the back office and
the apps use public names (or the few documented semi-public modules), and no runtime module
grows past what a reader can hold in their head. See docs/architecture.md."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import shelfwise

ROOT = Path(__file__).resolve().parents[1]
# Folder -> the import name pyproject maps it to.
PACKAGES = {
    "sdk": "shelfwise",
    "training": "shelfwise.training",
    "export": "shelfwise.export",
    "kiosk_demo": "shelfwise.kiosk_demo",
    "upstream": "shelfwise.upstream",
}
# What `import shelfwise` promises; a name leaves only through a deprecation, never by accident.
PUBLIC_NAMES = {
    "AuditEntry",
    "AuthLocked",
    "AuthenticationFailed",
    "Backoff",
    "BundleError",
    "BundleVerificationError",
    "CartLine",
    "Catalog",
    "CollectorConflict",
    "ConsentRequired",
    "Context",
    "Credentials",
    "DayReport",
    "Decision",
    "DeliveryReport",
    "EVENT_TYPES",
    "EnvelopeError",
    "Event",
    "ExportCheckFailed",
    "Fence",
    "FenceIndex",
    "GeofenceEvent",
    "Geofences",
    "InStoreLayout",
    "InvalidBarcode",
    "InvalidCatalog",
    "InvalidEvent",
    "InvalidInput",
    "InvalidLocation",
    "InvalidOffer",
    "InvalidRun",
    "InvalidTrainConfig",
    "InvalidTrainingData",
    "Item",
    "ItemFilter",
    "KeyConflict",
    "LoadedModel",
    "Manifest",
    "MemberProfile",
    "ModelHandle",
    "ModelRuntimeError",
    "Notification",
    "Notifications",
    "OFFER_REASONS",
    "Offer",
    "OfferContext",
    "OfferRejected",
    "Offers",
    "OutboxStatus",
    "PURPOSES",
    "ParsedBarcode",
    "PrivacyPolicy",
    "ProfileSealError",
    "RankedOffer",
    "Reason",
    "Recommendation",
    "Redemption",
    "ReleaseInfo",
    "Reservation",
    "SEGMENTS",
    "SURFACES",
    "ScanCard",
    "Shelfwise",
    "ShelfwiseError",
    "Shopper",
    "ShopperInfo",
    "SideTables",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "SyncError",
    "SyncRejected",
    "SyncReport",
    "SyncRetryable",
    "SyncUnauthorized",
    "Throttle",
    "UnknownItem",
    "UnknownShopper",
    "UpdateRefused",
    "VersionConflict",
    "Watch",
    "WeakSecret",
    "WebhookSender",
    "__version__",
    "best_language",
    "check_pin_strength",
    "circle",
    "decode_image",
    "expand_upce",
    "hash_secret",
    "normalize_gtin",
    "open",
    "parse_barcode",
    "parse_offer",
    "polygon",
    "verify_secret",
}
# The runtime modules code outside sdk/ may import besides `shelfwise` itself: the contracts
# the back office, the collector and the apps share with the runtime (docs/architecture.md).
SEMI_PUBLIC = {
    "shelfwise.clock",  # now_ms / DAY_MS: one clock
    "shelfwise.model.bundle",  # the bundle format export writes and the runtime reads
    "shelfwise.model.encoding",  # item ids -> indices and history padding, shared with training
    "shelfwise.model.litert",  # how a bundle carries its LiteRT network (export adds it)
    "shelfwise.model.runtime",  # the onnxruntime session settings export checks parity under
    "shelfwise.sync.protocol",  # the wire: headers, HMAC, envelopes, signed documents, keys
    "shelfwise.sync.leasing",  # the wire of offers across the fleet: shares, the ledger, codes
    "shelfwise.offers.codes",  # the code format (alphabet, check character) the collector issues
    "shelfwise.cli",  # the command line the back office's command groups plug into
    "shelfwise.cli.output",  # its one output helper (--json, tables)
    "shelfwise.cli.params",  # its checked parameter types (files, folders, counts)
}
# Benchmarks may also time internals directly (that is what a benchmark of a hot path does).
BENCHMARK_INTERNALS = {
    "shelfwise.model.runtime",
    "shelfwise.sync.outbox",
    "shelfwise.sync.upload",
    "shelfwise.sync.transport",
    "shelfwise.offers.rules",
    "shelfwise.offers.engine",
    "shelfwise.offers.rewards",
    "shelfwise.offers.stacking",
    "shelfwise.geo.shapes",
}
MAX_RUNTIME_MODULE_LINES = 650


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return module in MODULES and MODULES[module].name == "__init__.py"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved; imports
    under ``if TYPE_CHECKING`` are for the type checker only and are left out."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    package = module if _is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else base), node.lineno


def test_the_public_surface_is_exactly_the_pinned_names() -> None:
    assert set(shelfwise.__all__) == PUBLIC_NAMES
    for name in PUBLIC_NAMES:
        obj = getattr(shelfwise, name)
        if isinstance(obj, type):
            assert obj.__module__ == "shelfwise", f"{name} should print as shelfwise.{name}"


def test_no_module_imports_in_a_circle() -> None:
    graph = {
        module: {target for target, _ in imports_of(module, path) if target in MODULES}
        for module, path in MODULES.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if target == module:
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package's __init__ re-exporting its children is not a cycle with a child that imports
    # a sibling; a child importing its own package's __init__ back is.
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _outside_imports() -> Iterator[tuple[str, str, int, str]]:
    for module, path in MODULES.items():
        folder = path.relative_to(ROOT).parts[0]
        if folder == "sdk":
            continue
        for target, line in imports_of(module, path):
            yield folder, target, line, str(path.relative_to(ROOT))
    for path in sorted((ROOT / "benchmarks").rglob("*.py")):
        for target, line in imports_of("benchmarks." + path.stem, path):
            yield "benchmarks", target, line, str(path.relative_to(ROOT))


def test_code_outside_the_runtime_imports_only_public_names_or_the_contracts() -> None:
    own = tuple(f"{package}." for package in PACKAGES.values() if package != "shelfwise")
    wrong = []
    for folder, target, line, where in _outside_imports():
        if not target.startswith("shelfwise") or target == "shelfwise" or target.startswith(own):
            continue
        allowed = SEMI_PUBLIC | (BENCHMARK_INTERNALS if folder == "benchmarks" else set())
        if target not in allowed:
            wrong.append(f"{where}:{line} imports {target}")
    assert not wrong, "private runtime modules used outside sdk/:\n" + "\n".join(wrong)


def test_the_runtime_never_imports_the_back_office_or_torch() -> None:
    banned = ("torch", "onnx", "shelfwise.training", "shelfwise.export", "shelfwise.upstream")
    for module, path in MODULES.items():
        if not path.is_relative_to(ROOT / "sdk"):
            continue
        for target, line in imports_of(module, path):
            assert not (
                target in banned or target.startswith(tuple(b + "." for b in banned))
            ), f"{path.relative_to(ROOT)}:{line} imports {target}"


def test_no_runtime_module_is_longer_than_a_reader_can_hold() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "sdk").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_RUNTIME_MODULE_LINES
    }
    assert not long, f"split these by concept: {long}"


@pytest.mark.parametrize(
    ("call", "new_name"),
    [
        (lambda sw: sw.erase_shopper("L-1"), "forget_shopper"),
        (lambda sw: sw.purge_events(older_than_days=1), "forget_events"),
        (lambda sw: sw.expire_idle_sessions(60), "end_idle_sessions"),
        (lambda sw: sw.catalog.all_items(), "Catalog.all"),
        (lambda sw: sw.recommend(surface="trending", k=3), "limit="),
        (lambda sw: sw.member("L-1").recommend("trending", k=3), "limit="),
    ],
)
def test_old_names_still_work_for_one_release_and_say_what_replaced_them(
    call: object, new_name: str
) -> None:
    with shelfwise.open(":memory:") as sw:
        sw.member("L-1")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(sw)  # type: ignore[operator]
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert messages and new_name in messages[0]
