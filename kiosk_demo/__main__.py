"""Run the kiosk demo: ``python -m shelfwise.kiosk_demo``.

Example:
    python -m shelfwise.kiosk_demo --port 8420 --staff-pin 58029374
    python -m shelfwise.kiosk_demo --fleet      # two kiosks and a collector (``fleet_demo``)

With no ``--db`` the committed demo store is seeded into a working copy under the user's data
folder (``$XDG_DATA_HOME/shelfwise-kiosk/store.db``), so the repository copy stays pristine.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import shelfwise

from .app import KioskConfig, create_app
from .cards import card_code, member_of_card
from .kiosk import DEFAULT_HOSTS
from .seed import BUNDLE_DIR, SEEDED_FROM, STORE_DIR, seed_store, store_config, store_fingerprint

logger = logging.getLogger("shelfwise.kiosk_demo")


def default_db() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "shelfwise-kiosk" / "store.db"


DEMO_MEMBER_PIN = "7391"  # the demo cards' PIN, shown beside them on the welcome screen
DEMO_CONSENTS = {"personalization": True, "offers": True, "profile_sync": True}


def demo_cards(store_dir: Path = STORE_DIR) -> tuple[dict[str, Any], ...]:
    """A few loyalty cards to try: busy recent members, an occasional one, and a new card."""
    with open(store_dir / "members.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    recent = sorted(rows, key=lambda r: (r["last_basket"], int(r["basket_days"])), reverse=True)
    busy = [r for r in recent if int(r["basket_days"]) >= 8][:2]
    occasional = [r for r in recent if int(r["basket_days"]) == 2][:1]
    cards = [
        {"card": r["card"], "label": f"Member {r['member']} ({r['basket_days']} visits)"}
        for r in busy + occasional
    ]
    cards.append({"card": card_code("9999"), "label": "New member 9999 (no history)"})
    return tuple({**card, "pin": DEMO_MEMBER_PIN} for card in cards)


def enrol_demo_members(sw: shelfwise.Shelfwise, cards: tuple[dict[str, Any], ...]) -> None:
    """Give the demo cards what their members would have set in the phone app: a PIN and
    their choices (once: a later change on the kiosk's Privacy screen is kept)."""
    for card in cards:
        number = member_of_card(card["card"])
        if number is None:
            continue
        try:
            member = sw.shopper(number)
        except shelfwise.UnknownShopper:
            member = sw.member(number)
        if not member.has_pin():
            for purpose, granted in DEMO_CONSENTS.items():
                member.set_consent(purpose, granted)
            member.set_pin(card["pin"])


def strong_pin() -> str:
    """A random 8-digit staff PIN that passes ``shelfwise.check_pin_strength``."""
    while True:
        pin = f"{secrets.randbelow(10**8):08d}"
        try:
            return shelfwise.check_pin_strength(pin)
        except shelfwise.WeakSecret:
            continue


def read_chain_secret(path: Path) -> bytes:
    """The retailer's chain secret from a provisioning file (hex, at least 16 bytes)."""
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise shelfwise.InvalidInput(f"{path} is not a chain secret file (hex): {exc}") from exc
    if len(secret) < 16:
        raise shelfwise.InvalidInput(f"{path}: a chain secret is at least 16 bytes")
    return secret


def seeded_from(db: Path) -> str | None:
    """The fingerprint of the demo store files ``db`` was seeded from (None if unknown)."""
    with shelfwise.open(db) as sw:
        return sw.store.get_meta(SEEDED_FROM)


def open_store(
    db: Path,
    bundle: Path | None,
    store_dir: Path = STORE_DIR,
    *,
    history: bool = True,
    store_id: str | None = None,
    store_name: str | None = None,
    chain_secret: bytes | None = None,
) -> tuple[shelfwise.Shelfwise, dict[str, Any]]:
    """Seed ``db`` from the demo store if it does not exist, then open it with the bundle.

    ``history=False`` seeds the catalog without the members' baskets, ``store_id`` and
    ``store_name`` make it another store of the chain (the fleet demo's sister store);
    ``chain_secret`` lets members' profiles and erasures travel between kiosks.
    """
    config = store_config(store_dir)
    config = {
        **config,
        "store_id": store_id or config["store_id"],
        "name": store_name or config.get("name", ""),
    }
    if db.exists() and seeded_from(db) != store_fingerprint(store_dir, history=history):
        # The committed demo store changed (an upgrade): start from it again, keep the old copy.
        stale = db.with_name(db.name + ".old")
        for suffix in ("", "-wal", "-shm"):
            old_file = Path(str(db) + suffix)
            if old_file.exists():
                old_file.replace(Path(str(stale) + suffix))
        logger.warning("the demo store changed; the previous working copy is now %s", stale)
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        counts = seed_store(db, store_dir, history=history, store_id=config["store_id"])
        logger.info("seeded %s: %s", db, counts)
    if bundle is not None and not (bundle / "manifest.json").exists():
        logger.warning("no model bundle at %s: personal surfaces fall back to popularity", bundle)
        bundle = None
    sw = shelfwise.open(
        db,
        bundle=bundle,
        store_id=config["store_id"],
        utc_offset_minutes=int(config.get("utc_offset_minutes", 0)),
        synchronous="NORMAL",
        chain_secret=chain_secret,
    )
    configure_features(sw, config, store_dir)
    return sw, config


def configure_features(sw: shelfwise.Shelfwise, config: dict[str, Any], store_dir: Path) -> None:
    """Load offers and geofences into the SDK when those modules are present."""
    offers = sw.offers
    if (store_dir / "offers.yaml").exists():
        if hasattr(offers, "set_timezone") and config.get("timezone"):
            offers.set_timezone(config["timezone"])
        known = {o.offer_id: o.active for o in offers.all()}
        loaded = offers.load(store_dir / "offers.yaml")
        for offer in loaded:  # keep a staff member's on/off switch across restarts
            if offer.offer_id in known and not known[offer.offer_id]:
                offers.deactivate(offer.offer_id)
    sw.geo.add(*(fence_of(fence) for fence in config.get("geofences", [])))


def fence_of(data: dict[str, Any]) -> shelfwise.Fence:
    """A geofence from its ``store.json`` entry (a circle or a polygon ring)."""
    options: dict[str, Any] = {
        "store_id": str(data.get("store_id") or ""),
        "initial": data.get("initial", "enter"),
    }
    if "dwell_s" in data:  # otherwise the SDK's default dwell
        options["dwell_s"] = data["dwell_s"]
    if data.get("kind", "circle") == "polygon":
        ring = [(lat, lon) for lat, lon in data["ring"]]
        return shelfwise.polygon(data["fence_id"], ring, **options)
    return shelfwise.circle(data["fence_id"], data["lat"], data["lon"], data["radius_m"], **options)


def main(argv: list[str] | None = None) -> None:
    """Start the kiosk web app on localhost.

    Example:
        python -m shelfwise.kiosk_demo --host 127.0.0.1 --port 8420 --idle-seconds 90
    """
    parser = argparse.ArgumentParser(prog="python -m shelfwise.kiosk_demo", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address (default: localhost only)"
    )
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--db", type=Path, default=None, help="store file (seeded if missing)")
    parser.add_argument("--bundle", type=Path, default=BUNDLE_DIR, help="model bundle folder")
    parser.add_argument("--staff-pin", default=os.environ.get("SHELFWISE_STAFF_PIN"))
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        help="another name the kiosk is reached by (repeatable; localhost names always)",
    )
    parser.add_argument("--idle-seconds", type=float, default=90.0)
    parser.add_argument("--upstream", default=None, help="collector URL for sync (optional)")
    parser.add_argument("--key-file", type=Path, help="this kiosk's device key (add-device)")
    parser.add_argument(
        "--chain-secret-file", type=Path, help="the chain secret (hex): members travel"
    )
    parser.add_argument("--sync-every", type=float, default=60.0, help="seconds between syncs")
    parser.add_argument("--store-id", help="another store of the chain (default: store.json's)")
    parser.add_argument("--store-name", help="its name on the screen")
    parser.add_argument(
        "--no-history", action="store_true", help="seed without the members' baskets"
    )
    parser.add_argument(
        "--no-demo-pins",
        action="store_true",
        help="do not give the demo cards their PIN here (they prove it with their profile)",
    )
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="start a collector and two kiosks (--port and --port + 1; collector + 2)",
    )
    parser.add_argument("--fleet-dir", type=Path, help="the fleet demo's files (default: data dir)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")

    import uvicorn

    db = args.db or default_db()
    pin = args.staff_pin or strong_pin()
    try:
        shelfwise.check_pin_strength(pin)
    except shelfwise.WeakSecret as exc:
        parser.exit(
            2,
            f"{parser.prog}: refusing a weak staff PIN ({exc}). Give --staff-pin (or "
            "SHELFWISE_STAFF_PIN) at least 6 characters "
            "without a pattern, or leave it out for a random one.\n",
        )
    if args.fleet:
        from .fleet_demo import run_fleet

        folder = default_db().parent / "fleet"
        parser.exit(run_fleet(args, folder, staff_pin=pin, member_pin=DEMO_MEMBER_PIN))
    try:
        secret = read_chain_secret(args.chain_secret_file) if args.chain_secret_file else None
        credentials = shelfwise.Credentials.from_file(args.key_file) if args.key_file else None
    except shelfwise.InvalidInput as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    sw, config = open_store(
        db,
        args.bundle,
        history=not args.no_history,
        store_id=args.store_id,
        store_name=args.store_name,
        chain_secret=secret,
    )
    cards = demo_cards()
    if not args.no_demo_pins:
        enrol_demo_members(sw, cards)
    kiosk_config = KioskConfig(
        staff_pin=pin,
        idle_s=args.idle_seconds,
        upstream=args.upstream,
        sync_every_s=args.sync_every,
        store=config,
        demo_cards=cards,
        allowed_hosts=(*DEFAULT_HOSTS, args.host, *args.allow_host),
        credentials=credentials,
    )
    app = create_app(sw, kiosk_config)
    url = f"http://{args.host}:{args.port}/"
    print(f"shelfwise kiosk demo: {url}", flush=True)
    print(f"  store {config['name']} ({db}), model {sw.model_version or 'none (popularity only)'}")
    print(f"  staff screen PIN: {pin}", flush=True)
    print(f"  demo loyalty cards' PIN: {DEMO_MEMBER_PIN}", flush=True)
    if sw.fleet.enabled and args.upstream:
        print(f"  members travel through {args.upstream}; phone app: {url}phone", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        sw.close()


if __name__ == "__main__":
    main()
