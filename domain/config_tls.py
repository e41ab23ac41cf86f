"""`[smtp_in]` STARTTLS keys: tls_cert, tls_key (PEM paths) and require_tls.

Checked apart from the listener's limits because the files are checked as well (ticketd/
tls_files.py): a configuration with a missing file or a key that does not belong to the
certificate is refused at `ticketd check`, at start and on SIGHUP, naming the key. Only there
(`config.load_listener_config`): every other command, `ticketd ingest` from an MTA pipe above all,
loads the configuration without reading a certificate or a key it may not even be allowed to
read, and must not fail because the listener's files are being renewed.
"""

from __future__ import annotations

from pathlib import Path

from domain.tls_files import Problems


def check_listener_tls(
    problems: Problems, cert: Path | None, key: Path | None, require: bool
) -> None:
    """The keys that go together: both files or neither, and require_tls only with them."""
    if (cert is None) != (key is None):
        missing = "tls_key" if cert is not None else "tls_cert"
        problems.append((f"smtp_in.{missing}", "tls_cert and tls_key go together: set both"))
    if require and cert is None:
        problems.append(("smtp_in.require_tls", "needs tls_cert and tls_key to offer STARTTLS"))
