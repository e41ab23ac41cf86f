"""The `[oauth.NAME]` sections: OAuth2 providers whose tokens log ticketd in to IMAP and SMTP.

`[[imap]]` and `[smtp_out]` with `auth = "xoauth2"` name one with `oauth = "NAME"`. ticketd gets
the tokens itself (ingest/oauth_client.py): Microsoft with msal, Google with google-auth, any
other provider with a plain OAuth2 POST to `token_url`. Parsed into frozen records; every
problem is appended to the caller's list as (key, reason), so `ticketd check` reports them
together with the rest of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from domain.config_keys import check_keys

Problems = list[tuple[str, str]]
KINDS = ("microsoft", "google", "generic")
GRANTS = ("client_credentials", "refresh_token", "service_account")
MICROSOFT_LOGIN = "https://login.microsoftonline.com"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
OAUTH_KEYS = (
    "kind",
    "grant",
    "scope",
    "client_id",
    "client_secret_file",
    "certificate_file",
    "service_account_file",
    "tenant",
    "authority",
    "token_url",
    "device_authorization_url",
    "refresh_token_file",
    "ca_file",
    "timeout",
)


@dataclass(frozen=True)
class OAuthConfig:
    """One `[oauth.NAME]` block."""

    name: str
    kind: str  # microsoft, google, generic
    grant: str  # client_credentials, refresh_token, service_account
    scope: tuple[str, ...]
    client_id: str = ""
    client_secret_file: Path | None = None
    # Microsoft client_credentials without a secret: a PEM file with the private key and the
    # certificate uploaded to the app registration.
    certificate_file: Path | None = None
    # Google service_account: the JSON key of a service account with domain-wide delegation.
    service_account_file: Path | None = None
    tenant: str = ""  # Microsoft: the directory (contoso.onmicrosoft.com or its GUID)
    # Microsoft: the login host and tenant; another cloud (login.microsoftonline.us) or a test.
    authority: str = ""
    token_url: str = ""  # generic (and Google, where it defaults to Google's endpoint)
    device_authorization_url: str = ""  # generic: where `ticketd oauth login` starts
    # Where `ticketd oauth login` keeps the refresh token (mode 0600) for grant = refresh_token.
    refresh_token_file: Path = Path("var/oauth/token.json")
    ca_file: Path | None = None  # trust this CA for the token endpoint (a private provider)
    timeout: float = 30.0  # seconds for one request to the token endpoint

    @property
    def endpoint(self) -> str:
        """The token endpoint this block talks to, for messages."""
        if self.kind == "microsoft":
            return f"{self.authority_url}/oauth2/v2.0/token"
        return self.token_url

    @property
    def authority_url(self) -> str:
        return (self.authority or f"{MICROSOFT_LOGIN}/{self.tenant}").rstrip("/")


def _text(problems: Problems, table: dict[str, Any], key: str, at: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        problems.append((f"{at}.{key}", "must be a string"))
        return ""
    return value.strip()


def _file(
    problems: Problems, table: dict[str, Any], key: str, at: str, base: Path, must_exist: bool
) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append((f"{at}.{key}", "must be a path"))
        return None
    path = Path(value.strip()).expanduser()
    path = path if path.is_absolute() else base / path
    if must_exist and not path.is_file():
        problems.append((f"{at}.{key}", f"{path} does not exist or is no file"))
    return path


def _url(problems: Problems, table: dict[str, Any], key: str, at: str) -> str:
    value = _text(problems, table, key, at)
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        problems.append((f"{at}.{key}", f"{value!r} is not an http(s) URL"))
        return ""
    return value


def _scope(problems: Problems, table: dict[str, Any], at: str) -> tuple[str, ...]:
    value = table.get("scope")
    if isinstance(value, str) and value.split():
        return tuple(value.split())
    if isinstance(value, list) and value and all(isinstance(s, str) and s for s in value):
        return tuple(value)
    reason = "is required" if value is None else "must be scopes separated by spaces, or a list"
    problems.append((f"{at}.scope", reason))
    return ()


def _choice(problems: Problems, table: dict[str, Any], key: str, at: str, allowed: Any) -> str:
    value = _text(problems, table, key, at)
    if not value:
        problems.append((f"{at}.{key}", f"is required: one of {', '.join(allowed)}"))
    elif value not in allowed:
        problems.append((f"{at}.{key}", f"{value!r} is not one of {', '.join(allowed)}"))
        return ""
    return value


def _credentials(problems: Problems, config: OAuthConfig, table: dict[str, Any]) -> None:
    """What each kind and grant needs, one problem per key."""
    at, kind, grant = f"oauth.{config.name}", config.kind, config.grant
    if grant == "service_account" and kind != "google":
        problems.append((f"{at}.grant", "service_account is Google's; use client_credentials"))
    if grant == "client_credentials" and kind == "google":
        problems.append(
            (f"{at}.grant", "Google has no client_credentials grant: use service_account")
        )
    if grant == "service_account" and config.service_account_file is None:
        problems.append((f"{at}.service_account_file", "is required for service_account"))
    if grant != "service_account" and not config.client_id:
        problems.append((f"{at}.client_id", "is required"))
    secret, certificate = config.client_secret_file, config.certificate_file
    if grant == "client_credentials" and secret is None and certificate is None:
        problems.append((f"{at}.client_secret_file", "is required (or certificate_file)"))
    if kind == "microsoft" and grant == "refresh_token" and secret is not None:
        problems.append(
            (f"{at}.client_secret_file", "not used: Microsoft's device sign-in is a public client")
        )
    elif secret is not None and certificate is not None:
        problems.append((f"{at}.certificate_file", "set client_secret_file or this, not both"))
    if certificate is not None and kind != "microsoft":
        problems.append((f"{at}.certificate_file", "only for kind = 'microsoft'"))
    if kind == "microsoft" and not (config.tenant or config.authority):
        problems.append((f"{at}.tenant", "is required for kind = 'microsoft'"))
    if kind == "generic" and not config.token_url and "token_url" not in table:
        problems.append((f"{at}.token_url", "is required for kind = 'generic'"))


def _provider(problems: Problems, name: str, table: dict[str, Any], base: Path) -> OAuthConfig:
    at = f"oauth.{name}"
    check_keys(problems, table, at, OAUTH_KEYS)
    kind = _choice(problems, table, "kind", at, KINDS)
    token_url = _url(problems, table, "token_url", at)
    timeout = table.get("timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 1:
        problems.append((f"{at}.timeout", "must be a number of seconds, at least 1"))
        timeout = 30
    refresh_file = _file(problems, table, "refresh_token_file", at, base, False)
    config = OAuthConfig(
        name=name,
        kind=kind,
        grant=_choice(problems, table, "grant", at, GRANTS),
        scope=_scope(problems, table, at),
        client_id=_text(problems, table, "client_id", at),
        client_secret_file=_file(problems, table, "client_secret_file", at, base, True),
        certificate_file=_file(problems, table, "certificate_file", at, base, True),
        service_account_file=_file(problems, table, "service_account_file", at, base, True),
        tenant=_text(problems, table, "tenant", at),
        authority=_url(problems, table, "authority", at),
        token_url=token_url or (GOOGLE_TOKEN_URL if kind == "google" else ""),
        device_authorization_url=_url(problems, table, "device_authorization_url", at),
        refresh_token_file=refresh_file or base / "var" / "oauth" / f"{name}.json",
        ca_file=_file(problems, table, "ca_file", at, base, True),
        timeout=float(timeout),
    )
    if config.kind and config.grant:
        _credentials(problems, config, table)
    return config


def parse_oauth(problems: Problems, data: dict[str, Any], base: Path) -> tuple[OAuthConfig, ...]:
    """Every `[oauth.NAME]` block, in the order of the file."""
    raw = data.get("oauth", {})
    if not isinstance(raw, dict):
        problems.append(("oauth", "must be tables, one per provider ([oauth.NAME])"))
        return ()
    providers = []
    for name, table in raw.items():
        if not isinstance(table, dict):
            problems.append((f"oauth.{name}", "must be a table ([oauth.NAME])"))
            continue
        providers.append(_provider(problems, name, table, base))
    return tuple(providers)


def check_reference(
    problems: Problems, providers: tuple[OAuthConfig, ...], auth: str, oauth: Any, at: str
) -> str | None:
    """`oauth = "NAME"` of an `[[imap]]` account or `[smtp_out]`: set with xoauth2 only, and
    naming a block that exists."""
    if oauth is None:
        return None
    if not isinstance(oauth, str) or not oauth.strip():
        problems.append((f"{at}.oauth", "must be the name of an [oauth.NAME] block"))
        return None
    if auth != "xoauth2":
        problems.append((f"{at}.oauth", "needs auth = 'xoauth2'"))
        return None
    if oauth not in {provider.name for provider in providers}:
        known = ", ".join(provider.name for provider in providers) or "none"
        problems.append((f"{at}.oauth", f"no [oauth.{oauth}] block (defined: {known})"))
        return None
    return oauth
