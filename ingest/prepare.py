"""The steps before the transaction: what can be known of a message without the database.

Parsing, our sender verification (DNS), the spam filter (rspamd), the virus scanner (clamd)
and the slow checks of files that may be identity documents can each take seconds, and
untrusted bytes must not hold a write lock while they do (issue 22). So they run first, outside
any transaction, in the daemon's parsing process (ingest/isolation.py) with a time limit:
`PREPARE_STEPS`, walked by `prepare_message`, each step a name and one function from the
`Reading` so far to the next. What comes out (`Prepared`, or `Failed` naming the step) is what
the transaction's steps (ingest/pipeline.py) start from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from domain.config import Config
from domain.message import ParsedMessage, SpamVerdict
from domain.sender_auth import AUTHENTICATION_RESULTS, AuthResult, believed
from ingest.documents_step import ContentChecks, check_contents
from ingest.mime_shape import DEFAULT_LIMITS, ShapeLimits
from ingest.parsing import parse_message
from ingest.spam import Session, check, upstream_verdict
from ingest.text_readings import TextReadings, read_texts
from ingest.verify import envelope_of, header_value, verify
from ingest.virus_step import ScanReport, scan_attachments
from storage.blobs import BlobStore


@dataclass(frozen=True)
class Arrived:
    """What the journal row says of a message's arrival, read before the message is claimed."""

    blob_key: str
    source: str
    envelope_from: str | None
    envelope_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    message: ParsedMessage
    scan: ScanReport | None
    texts: TextReadings  # what the steps read of its words (ingest/text_readings.py)
    # The slow checks of the files that may be identity documents, made here rather than
    # inside the write transaction (ingest/documents_step.py).
    checks: ContentChecks | None = None


@dataclass(frozen=True)
class Failed:
    """A step before the transaction raised: which one, and the error (for the runner)."""

    step: str
    error: Exception


@dataclass(frozen=True)
class Reading:
    """The per-message state before the transaction; each step returns the next one."""

    config: Config
    raw: bytes | bytearray
    arrived: Arrived
    own: tuple[AuthResult, ...] = ()  # our SPF/DKIM/DMARC results
    message: ParsedMessage | None = None
    scan: ScanReport | None = None
    checks: ContentChecks | None = None
    texts: TextReadings | None = None

    @property
    def parsed(self) -> ParsedMessage:
        if self.message is None:
            raise RuntimeError("a step that needs the parsed message ran before parse")
        return self.message

    @property
    def read(self) -> TextReadings:
        if self.texts is None:
            raise RuntimeError("the message was prepared without reading its text")
        return self.texts


@dataclass(frozen=True)
class PrepareStep:
    name: str
    run: Callable[[Reading], Reading]


def step_parse(
    raw: bytes | bytearray, limits: ShapeLimits = DEFAULT_LIMITS, envelope_from: str | None = None
) -> ParsedMessage:
    """`limits` are the configuration's MIME shape limits ([limits] max_mime_parts, ...);
    `envelope_from` the journal row's envelope sender."""
    return parse_message(raw, limits, envelope_from)


def step_believe(
    config: Config, message: ParsedMessage, own: Sequence[AuthResult] = ()
) -> ParsedMessage:
    """The message as the later steps may read it: every Authentication-Results header that
    claims our authserv-id removed (a sender wrote it), and the verdict we believe attached,
    made of `own` (our verification) and the headers of `[smtp_in] trusted_authserv_ids`."""
    trust = config.trust
    from_domain = message.sender.email.rpartition("@")[2]
    headers, verdict = believed(
        message.headers, from_domain, trust.authserv_id, trust.trusted_authserv_ids, own
    )
    if own:  # ours first, where a receiving server puts its own (RFC 8601 section 5)
        headers = ((AUTHENTICATION_RESULTS, header_value(list(own), trust.authserv_id)), *headers)
    return replace(message, headers=headers, auth=verdict)


def step_spam(
    config: Config, raw: bytes | bytearray, message: ParsedMessage, session: Session
) -> SpamVerdict | None:
    """The spam verdict ([spam]): a trusted gateway's that says spam, else rspamd's (within
    `[spam] timeout`), else None when no filter is configured."""
    if config.spam.trust_upstream_headers:
        upstream = upstream_verdict(message.headers)
        if upstream is not None:
            return upstream
    if config.spam.rspamd_url is None:
        return None
    return check(config.spam, raw, session)


def step_verify(
    config: Config, raw: bytes | bytearray, source: str, envelope_from: str | None
) -> list[AuthResult]:
    """Our SPF, DKIM and DMARC results for mail our listener received (ingest/verify.py), within
    `[dns] timeout`; nothing for mail another server received, or with `verify_senders` off."""
    envelope = envelope_of(source, envelope_from, raw)
    if envelope is None or not config.trust.verify_senders:
        return []
    return verify(raw, envelope, config.trust.dns, config.trust.authserv_id)


def spam_session(arrived: Arrived, raw: bytes | bytearray) -> Session:
    """What the spam filter is told of the SMTP session (only the listener's mail has one)."""
    envelope = envelope_of(arrived.source, arrived.envelope_from, raw)
    if envelope is None:
        return Session(mail_from=arrived.envelope_from or "", rcpt=arrived.envelope_to)
    return Session(envelope.ip, envelope.helo, envelope.mail_from, arrived.envelope_to)


def _verify(reading: Reading) -> Reading:
    own = step_verify(
        reading.config, reading.raw, reading.arrived.source, reading.arrived.envelope_from
    )
    return replace(reading, own=tuple(own))


def _parse(reading: Reading) -> Reading:
    limits = reading.config.limits
    shape = ShapeLimits(parts=limits.max_mime_parts, depth=limits.max_mime_depth)
    parsed = step_parse(reading.raw, shape, reading.arrived.envelope_from)
    return replace(reading, message=step_believe(reading.config, parsed, reading.own))


def _spam(reading: Reading) -> Reading:
    session = spam_session(reading.arrived, reading.raw)
    verdict = step_spam(reading.config, reading.raw, reading.parsed, session)
    return replace(reading, message=replace(reading.parsed, spam=verdict))


def _scan(reading: Reading) -> Reading:
    return replace(reading, scan=scan_attachments(reading.config, reading.parsed))


def _check_documents(reading: Reading) -> Reading:
    if reading.scan is not None and reading.scan.infected:
        return reading  # held for the admin: nothing of it is kept, so nothing to check
    return replace(reading, checks=check_contents(reading.config.kyc, reading.parsed))


def _read_texts(reading: Reading) -> Reading:
    return replace(reading, texts=read_texts(reading.config, reading.parsed))


PREPARE_STEPS: tuple[PrepareStep, ...] = (
    # Our verification reads the raw bytes; the parse then attaches the verdict we believe.
    PrepareStep("verify the sender", _verify),
    PrepareStep("parse", _parse),
    PrepareStep("spam check", _spam),
    PrepareStep("virus scan", _scan),
    PrepareStep("check the documents", _check_documents),
    # Last: the words of the message as the transaction's steps read them.
    PrepareStep("read the text", _read_texts),
)


def prepare_stored(config: Config, blobs: BlobStore, arrived: Arrived) -> Prepared | Failed:
    """`prepare_message` of the raw bytes the journal holds for `arrived`, read here. The daemon
    runs this in its parsing process, to which the blob store travels as its folder and key
    file (storage/keyring.py), so the daemon's own process never holds a message's raw bytes
    for the worker, nor pickles them into the pipe (issue 19: a 25 MB message was read,
    decrypted and pickled there, three copies, to be parsed in the other process)."""
    try:
        raw = blobs.read_plain(arrived.blob_key)  # a bytearray: one copy less of it held
    except Exception as error:  # a damaged or missing blob: the runner's policy decides
        return Failed("parse", error)
    return prepare_message(config, raw, arrived)


def prepare_message(config: Config, raw: bytes | bytearray, arrived: Arrived) -> Prepared | Failed:
    """PREPARE_STEPS in order. Module-level, so that the daemon can run it in its parsing
    process (ingest/isolation.py); an error comes back as `Failed`, for the runner's policy."""
    reading = Reading(config, raw, arrived)
    for step in PREPARE_STEPS:
        try:
            reading = step.run(reading)
        except Exception as error:
            return Failed(step.name, error)
    return Prepared(reading.parsed, reading.scan, reading.read, reading.checks)
