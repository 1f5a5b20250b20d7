"""The package store: every account's inclusion package in one indexed SQLite file.

Millions of small JSON files strain any filesystem, and an exchange serves packages one user at
a time: so `build_store` writes them, a chunk per transaction, into
`EPOCH_DIR/private/packages.sqlite`, keyed by account id. It holds salts, so it stays private.
The build runs into a `.partial` file that a rerun resumes (the chunks already committed are
kept) and is renamed into place only when complete, so a reader never sees half a store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .bundle import load_bundle
from .progress import NullReporter, Reporter

NAME = "packages.sqlite"
SCHEMA_VERSION = "1"


class StoreError(ValueError):
    """No usable store: absent, or built for another bundle."""


def store_path(epoch_dir: Path) -> Path:
    return epoch_dir / "private" / NAME


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # a crash loses at most the chunk being written
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS packages ("
        "account_id TEXT PRIMARY KEY, leaf_index INTEGER NOT NULL, package TEXT NOT NULL)"
    )
    return db


def _meta(db: sqlite3.Connection) -> dict[str, str]:
    return dict(db.execute("SELECT key, value FROM meta").fetchall())


class PackageStore:
    """A built store, opened for reading."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, epoch_dir: Path, manifest_sha256: str | None = None) -> PackageStore:
        path = store_path(epoch_dir)
        if not path.is_file():
            raise StoreError(f"{path} does not exist: run `zksolvency packages {epoch_dir}`")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = _meta(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(f"{path}: not a package store ({exc})") from None
        if meta.get("schema") != SCHEMA_VERSION or meta.get("complete") != "1":
            db.close()
            raise StoreError(f"{path}: not a complete package store")
        if manifest_sha256 is not None and meta.get("manifest_sha256") != manifest_sha256:
            db.close()
            raise StoreError(f"{path} was built for another bundle: build it again")
        return cls(db, path)

    def __enter__(self) -> PackageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM packages").fetchone()[0])

    def get(self, account_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT package FROM packages WHERE account_id = ?", (account_id,)
        ).fetchone()
        pkg: dict[str, Any] | None = json.loads(row[0]) if row else None
        return pkg

    def items(self) -> Iterator[tuple[str, str]]:
        """(account id, package JSON) in leaf order."""
        yield from self.db.execute("SELECT account_id, package FROM packages ORDER BY leaf_index")


@dataclass
class BuildStats:
    packages: int
    resumed: int  # packages already in the store from an interrupted run
    tree_seconds: float
    write_seconds: float
    bytes: int
    path: Path

    @property
    def rate(self) -> float:
        """Packages written per second (tree rebuild excluded; it is reported apart)."""
        done = self.packages - self.resumed
        return done / self.write_seconds if self.write_seconds > 0 else float("inf")


def build_store(
    epoch_dir: Path, reporter: Reporter | None = None, chunk: int = 20_000
) -> BuildStats:
    """Write every account's package into the store (resuming an interrupted build)."""
    from .inclusion import PackageMaker, private_rows, rebuild_tree

    rep = reporter or NullReporter()
    bundle = load_bundle(epoch_dir)
    final = store_path(epoch_dir)
    partial = final.with_name(NAME + ".partial")
    n_accounts = int(bundle.manifest["accounts"])
    t0 = time.perf_counter()
    rep.info(f"rebuilding the tree of {n_accounts} accounts")
    tree = rebuild_tree(epoch_dir, bundle.manifest)
    tree_s = time.perf_counter() - t0
    maker = PackageMaker(bundle, tree)
    if partial.exists():
        db = _connect(partial)
        if _meta(db).get("manifest_sha256") != bundle.sha256:
            db.close()
            for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                p.unlink(missing_ok=True)
            db = _connect(partial)
    else:
        db = _connect(partial)
    with db:
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema', ?), ('manifest_sha256', ?), "
            "('epoch', ?), ('complete', '0')",
            (SCHEMA_VERSION, bundle.sha256, str(bundle.epoch)),
        )
    resumed = int(db.execute("SELECT COUNT(*) FROM packages").fetchone()[0])
    if resumed:
        rep.info(f"resuming: {resumed} of {n_accounts} packages already written")
    t1 = time.perf_counter()
    written = 0
    rows: list[tuple[str, int, str]] = []
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with rep.task("writing inclusion packages", n_accounts) as advance:
        advance(resumed)
        for i, row in enumerate(private_rows(epoch_dir)):
            if i < resumed:  # rows go in leaf order, a committed chunk at a time
                continue
            rows.append((str(row["id"]), int(row["index"]), dumps(maker.package(row))))
            if len(rows) >= chunk:
                with db:
                    db.executemany("INSERT INTO packages VALUES (?, ?, ?)", rows)
                written += len(rows)
                advance(len(rows))
                rows.clear()
        if rows:
            with db:
                db.executemany("INSERT INTO packages VALUES (?, ?, ?)", rows)
            written += len(rows)
            advance(len(rows))
    total = resumed + written
    if total != n_accounts:
        db.close()
        raise StoreError(f"{n_accounts} accounts in the manifest, {total} private rows")
    with db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'complete'")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    write_s = time.perf_counter() - t1
    os.replace(partial, final)
    return BuildStats(total, resumed, tree_s, write_s, final.stat().st_size, final)


def package_filename(account_id: str) -> str:
    """A file name for an account's package that no id can escape from (ids may hold '/')."""
    return quote(account_id, safe="") + ".json"


def export_files(epoch_dir: Path, out_dir: Path, reporter: Reporter | None = None) -> int:
    """One JSON file per account, from the store; returns the count.

    The files go into a fresh folder beside `out_dir`, synced once and renamed into place at
    the end: readers see no folder or the whole of it (an fsync per file would cost 5x)."""
    import shutil

    rep = reporter or NullReporter()
    bundle = load_bundle(epoch_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise StoreError(f"{out_dir} exists and is not empty: give a new folder")
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    n = 0
    with PackageStore.open(epoch_dir, bundle.sha256) as store:
        total = len(store)
        with rep.task("writing package files", total) as advance:
            for account_id, text in store.items():
                (partial / package_filename(account_id)).write_text(text + "\n", encoding="utf-8")
                n += 1
                advance(1)
    os.sync()
    if out_dir.exists():
        out_dir.rmdir()
    os.replace(partial, out_dir)
    return n
