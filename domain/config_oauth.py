"""The `[oauth.NAME]` sections: OAuth2 providers whose tokens log ticketd in to IMAP and SMTP.

`[[imap]]` and `[smtp_out]` with `auth = "xoauth2"` name one with `oauth = "NAME"`. ticketd gets
the tokens itself (ingest/oauth_client.py): Microsoft with msal, Google with google-auth, any
other provider with a plain OAuth2 POST to `token_url`. Declared as a table
(domain/config_schema.py); what a kind and a grant need together is checked here, each problem
appended to the caller's list as (key, reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from domain.config_kinds import Custom, FilePath, Invalid, Number, OneOf, Problems, Text, Url
from domain.config_schema import Table, key

KINDS = ("microsoft", "google", "generic")
GRANTS = ("client_credentials", "refresh_token", "service_account")
MICROSOFT_LOGIN = "https://login.microsoftonline.com"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"


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


def _scope(value: Any, base: Path) -> tuple[str, ...]:
    if isinstance(value, str) and value.split():
        return tuple(value.split())
    if isinstance(value, list) and value and all(isinstance(s, str) and s for s in value):
        return tuple(value)
    raise Invalid("must be scopes separated by spaces, or a list")


_FILE = FilePath("file")
_STRING = Text("a string", empty=True)


class OAuthTable(Table):
    kind: Annotated[str, OneOf(KINDS)] = key(doc="the provider")
    grant: Annotated[str, OneOf(GRANTS)] = key(doc="how ticketd gets its tokens")
    scope: Annotated[tuple[str, ...], Custom("scopes separated by spaces, or a list", _scope)] = (
        key(doc="what the token may do")
    )
    client_id: Annotated[str, _STRING] = key("", doc="the app's id (not for service_account)")
    client_secret_file: Annotated[Path | None, _FILE] = key(None, doc="the app's secret")
    certificate_file: Annotated[Path | None, _FILE] = key(
        None, doc="microsoft, instead of a secret: the private key and certificate, PEM"
    )
    service_account_file: Annotated[Path | None, _FILE] = key(
        None, doc="google service_account: the JSON key"
    )
    tenant: Annotated[str, _STRING] = key("", doc="microsoft: the directory")
    authority: Annotated[str, Url()] = key(
        "", doc="microsoft: another cloud; default login.microsoftonline.com/TENANT"
    )
    token_url: Annotated[str, Url()] = key(
        "", shown="google: Google's", doc="generic: required; google: Google's endpoint"
    )
    device_authorization_url: Annotated[str, Url()] = key(
        "", doc="generic: where `oauth login` starts"
    )
    refresh_token_file: Annotated[Path | None, FilePath()] = key(
        None, shown="var/oauth/NAME.json", doc="refresh_token: where `oauth login` keeps it"
    )
    ca_file: Annotated[Path | None, _FILE] = key(None, doc="trust this CA for the endpoint")
    timeout: Annotated[float, Number("a number of seconds, at least 1", 1)] = key(
        30.0, doc="seconds for one request to the token endpoint"
    )


def _credentials(problems: Problems, config: OAuthConfig, token_url_set: bool) -> None:
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
        problems.append((f"{at}.certificate_file", 'only for kind = "microsoft"'))
    if kind == "microsoft" and not (config.tenant or config.authority):
        problems.append((f"{at}.tenant", 'is required for kind = "microsoft"'))
    if kind == "generic" and not config.token_url and not token_url_set:
        problems.append((f"{at}.token_url", 'is required for kind = "generic"'))


def build_oauth(
    problems: Problems, tables: dict[str, OAuthTable], base: Path
) -> tuple[OAuthConfig, ...]:
    """Every `[oauth.NAME]` block, in the order of the file."""
    providers = []
    for name, table in tables.items():
        values = dict(table)
        if table.kind == "google" and not table.token_url:
            values["token_url"] = GOOGLE_TOKEN_URL
        if table.refresh_token_file is None:
            values["refresh_token_file"] = base / "var" / "oauth" / f"{name}.json"
        config = OAuthConfig(name=name, **values)
        _credentials(problems, config, "token_url" in table.model_fields_set)
        providers.append(config)
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
        problems.append((f"{at}.oauth", 'needs auth = "xoauth2"'))
        return None
    if oauth not in {provider.name for provider in providers}:
        known = ", ".join(provider.name for provider in providers) or "none"
        problems.append((f"{at}.oauth", f"no [oauth.{oauth}] block (defined: {known})"))
        return None
    return oauth
