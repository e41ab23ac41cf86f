"""`ticketd kyc keys | rotate-key [--retire]`: the keys that seal the blob store, and rotating them.

A rotation runs while the daemons run: they pick the new key up from the key file by themselves
(storage/keyring.py). See storage/rotation.py for the steps and why retiring is a separate one.
Output names keys by id only; no key material is ever printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from storage.documents import DocumentStore
from storage.keyring import KeyFileError
from storage.rotation import RETIRE_GRACE, RotationError, RotationReport, retire, rotate
from storage.sealed_blobs import SealedBlobStore
from ticketd.commands import EX_OK, print_json
from ticketd.state import State
from ticketd.views import print_table


def _sealed(state: State) -> SealedBlobStore:
    if not isinstance(state.blobs, SealedBlobStore):  # open_state always seals
        raise TypeError("the blob store is not sealed: there are no keys")
    return state.blobs


def list_keys(state: State, args: argparse.Namespace) -> int:
    blobs = _sealed(state)
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
        print_json(rows)
        return EX_OK
    print(f"key file: {blobs.keyring.describe()}")
    print_table(["id", "role", "rotating", "created", "superseded"], rows)
    return EX_OK


def _print_report(report: RotationReport, as_json: bool) -> None:
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    print(f"{'resumed the rotation to' if report.resumed else 'rotating to'} key {report.key}")
    print(
        f"re-encrypted {report.documents} document(s), {report.blobs} other blob(s) and "
        f"{report.mails} outbox mail(s); {report.already} already under key {report.key}"
    )
    for blob, reason in report.failed:
        print(f"  not re-encrypted: {blob}: {reason}", file=sys.stderr)


def rotate_key(state: State, args: argparse.Namespace) -> int:
    blobs = _sealed(state)
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
