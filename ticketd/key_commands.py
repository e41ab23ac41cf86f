"""`ticketd kyc keys | rotate-key [--retire]`: the keys that seal the blob store, and rotating them.

A rotation runs while the daemons run: they pick the new key up from the key file by themselves
(storage/keyring.py). See storage/rotation.py for the steps and why retiring is a separate one.
Output names keys by id only; no key material is ever printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.rotation import RotationReport
    from storage.sealed_blobs import SealedBlobStore

EX_OK = 0
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _keys(state: Any, args: argparse.Namespace) -> int:
    blobs: SealedBlobStore = state.blobs
    data = blobs.keyring.data
    rows = [
        {
            "id": entry.id,
            "role": "write" if entry.id == data.write else "old",
            "rotating": entry.id == data.rotating,
            "created": entry.created,
            "superseded": entry.superseded,
        }
        for entry in data.keys
    ]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EX_OK
    from ticketd.views import print_table

    print(f"key file: {blobs.keyring.describe()}")
    print_table(["id", "role", "rotating", "created", "superseded"], rows)
    return EX_OK


def _print_report(report: RotationReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(dataclasses.asdict(report), indent=2, default=str))
        return
    print(f"{'resumed the rotation to' if report.resumed else 'rotating to'} key {report.key}")
    print(
        f"re-encrypted {report.documents} document(s) and {report.blobs} other blob(s); "
        f"{report.already} already under key {report.key}"
    )
    for blob, reason in report.failed:
        print(f"  not re-encrypted: {blob}: {reason}", file=sys.stderr)


def _rotate(state: Any, args: argparse.Namespace) -> int:
    from storage.documents import DocumentStore
    from storage.keyring import KeyFileError
    from storage.rotation import RETIRE_GRACE, RotationError, retire, rotate

    blobs: SealedBlobStore = state.blobs
    documents = DocumentStore.open(blobs, state.config.kyc.key_file)
    now = state.clock.now()
    try:
        if args.retire:
            report = retire(state.db, blobs, documents, now)
            _print_report(report, args.json)
            if not args.json:
                retired = ", ".join(report.retired) or "none"
                print(f"retired key(s): {retired}; only key {report.key} remains")
            return EX_OK
        report = rotate(state.db, blobs, documents, now)
    except (RotationError, KeyFileError) as error:
        print(f"ticketd kyc rotate-key: {error}", file=sys.stderr)
        return 1
    _print_report(report, args.json)
    if not report.finished:
        print(
            f"{len(report.failed)} blob(s) could not be re-encrypted; the rotation stays "
            "unfinished: run `ticketd kyc rotate-key` again once they are dealt with",
            file=sys.stderr,
        )
        return 1
    if not args.json:
        print(
            "the rotation is finished; the old key(s) still open old copies until "
            f"`ticketd kyc rotate-key --retire` (possible {RETIRE_GRACE} after the rotation began)"
        )
    return EX_OK


def add_key_commands(k_commands: Any, with_state: Callable[[StateBody], Handler]) -> None:
    keys = k_commands.add_parser("keys", help="the keys of the key file (ids, never the keys)")
    keys.add_argument("--json", action="store_true")
    keys.set_defaults(handler=with_state(_keys))
    rotate_key = k_commands.add_parser(
        "rotate-key",
        help="a new key for sealing; re-encrypt every blob and document under it",
        description="Adds a new key that seals from now on and re-encrypts the journal and the "
        "identity documents under it while the daemons keep running; run again to resume one "
        "cut short. With --retire: no new key; remove the old keys once nothing needs them.",
    )
    rotate_key.add_argument(
        "--retire", action="store_true", help="remove the old keys (after the rotation)"
    )
    rotate_key.add_argument("--json", action="store_true")
    rotate_key.set_defaults(handler=with_state(_rotate))
