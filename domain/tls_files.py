"""The SMTP listener's certificate and key: checked, loaded into an ssl context, described.

`check_pair` runs when the configuration is read (so `ticketd check`, `ticketd run` and a
SIGHUP all refuse a bad pair) and says which file is wrong and how: missing, not a file,
unreadable, not PEM, a key behind a passphrase, a key that does not belong to the certificate.
`ssl` alone would say "[SSL] PEM lib" for most of these, naming neither file.

`server_context` builds what aiosmtpd offers after STARTTLS. The daemon calls it again on every
SIGHUP, because a renewed certificate (certbot, an ACME client) usually keeps its paths: the
configuration is unchanged, only the files' content is new.
"""

from __future__ import annotations

import ssl
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

Problems = list[tuple[str, str]]


def _read(problems: Problems, key: str, path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        problems.append((key, f"{path} does not exist"))
    except IsADirectoryError:
        problems.append((key, f"{path} is a folder, not a PEM file"))
    except OSError as error:
        problems.append((key, f"{path} cannot be read: {error.strerror or error}"))
    return None


def _certificates(problems: Problems, key: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        problems.append((key, f"{path} holds no PEM certificate (BEGIN CERTIFICATE)"))
        return []


def _private_key(problems: Problems, key: str, path: Path, data: bytes) -> PrivateKeyTypes | None:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        problems.append(
            (key, f"{path} is protected by a passphrase; give ticketd an unencrypted key file")
        )
    except (ValueError, UnsupportedAlgorithm):
        problems.append((key, f"{path} holds no PEM private key (BEGIN PRIVATE KEY)"))
    return None


def _public(value: x509.Certificate | PrivateKeyTypes) -> bytes:
    return value.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_pair(cert: Path, key: Path, prefix: str = "smtp_in.") -> Problems:
    """Problems with the pair, each naming `tls_cert` or `tls_key`; [] when ssl can use it."""
    cert_key, key_key = f"{prefix}tls_cert", f"{prefix}tls_key"
    problems: Problems = []
    cert_data, key_data = _read(problems, cert_key, cert), _read(problems, key_key, key)
    chain = [] if cert_data is None else _certificates(problems, cert_key, cert, cert_data)
    private = None if key_data is None else _private_key(problems, key_key, key, key_data)
    if problems or private is None or not chain:
        return problems
    if _public(chain[0]) != _public(private):
        problems.append((key_key, f"{key} does not match the certificate in {cert}"))
        return problems
    try:
        server_context(cert, key)
    except (ssl.SSLError, OSError) as error:  # anything the checks above did not foresee
        problems.append((cert_key, f"{cert} and {key} are not usable for TLS: {error}"))
    return problems


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The context for STARTTLS: the server's side, TLS 1.2 or later, no client certificates."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def describe(cert: Path, now: datetime) -> tuple[str, bool]:
    """ "CN=mx.example.com, valid until 2027-02-01 12:00 UTC" for the log, and whether it has
    expired (still served: most sending MTAs do not check, but the admin should know)."""
    first = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    until = first.not_valid_after_utc
    text = f"{first.subject.rfc4514_string()}, valid until {until:%Y-%m-%d %H:%M} UTC"
    return text, until <= now
