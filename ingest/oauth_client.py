"""Access tokens from an OAuth2 token endpoint, for IMAP and SMTP XOAUTH2 (`[oauth.NAME]`).

Three kinds of provider, each spoken by a well-kept library: Microsoft's identity platform with
msal, Google with google-auth, anything else (Keycloak, Okta, Zitadel...) with a plain RFC 6749
POST. The grants: `client_credentials` (the app's own token: Microsoft 365 with an Exchange
service principal), `refresh_token` (a user's delegated token; `ticketd oauth login` obtained the
refresh token, ingest/oauth_login.py) and `service_account` (Google Workspace domain-wide
delegation: a token for the mailbox the service account acts as).

Every failure is an `OAuthError` whose `stage` names what an admin must look at: the token
endpoint (unreachable, not an OAuth2 answer), the client (id, secret, certificate), the grant
(revoked or expired: log in again), the permission (a scope the app may not have), the setup
(no refresh token yet). None of the texts carries a token or a secret.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import google.oauth2.service_account
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.config_oauth import OAuthConfig
from domain.token_source import TokenError

# What the token endpoint's `error` says about where the fault lies (RFC 6749 5.2, RFC 8628).
_STAGES = {
    "invalid_client": "client",
    "unauthorized_client": "client",
    "invalid_grant": "grant",
    "expired_token": "grant",
    "invalid_scope": "permission",
    "access_denied": "permission",
    "consent_required": "permission",
    "interaction_required": "grant",
}
_HINTS = {
    "client": "check client_id and the secret or certificate",
    "grant": "the grant was revoked or has expired: run `ticketd oauth login {name}` again",
    "permission": "the app lacks this permission or an admin's consent: check `scope`",
    "endpoint": "is the token endpoint reachable?",
    "setup": "run `ticketd oauth login {name}` first",
}
# msal adds these to every delegated request itself and refuses them in `scopes`.
_MSAL_RESERVED = {"openid", "profile", "offline_access"}
# Microsoft's and Google's tokens live an hour; an answer without expires_in gets this.
DEFAULT_LIFETIME = timedelta(minutes=60)


class OAuthError(TokenError):
    """No access token. `stage`: endpoint, client, grant, permission or setup."""

    def __init__(self, provider: OAuthConfig, stage: str, detail: str) -> None:
        self.stage = stage
        hint = _HINTS.get(stage, "").format(name=provider.name)
        text = f"oauth {provider.name}: {stage} failed at {provider.endpoint}: {detail}"
        super().__init__(f"{text} ({hint})" if hint else text)


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_at: datetime
    refresh_token: str | None = None  # a new refresh token the endpoint handed out, to keep


class TokenClient(Protocol):
    """Asks the token endpoint for a new access token (never a cached one)."""

    store: RefreshTokenStore

    def fetch(self, subject: str, now: datetime) -> Issued: ...


def read_secret(provider: OAuthConfig, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise OAuthError(provider, "client", f"cannot read {path}: {error.strerror}") from None


class RefreshTokenStore:
    """The refresh token of a `refresh_token` grant, in a file only ticketd's user can read
    (0600 in a 0700 folder), replaced atomically when the endpoint rotates it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise TokenError(f"cannot read {self.path}: {error}") from None
        value = data.get("refresh_token") if isinstance(data, dict) else None
        return value if isinstance(value, str) and value else None

    def save(self, refresh_token: str, now: datetime) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = json.dumps({"refresh_token": refresh_token, "saved_at": now.isoformat()})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an older file of another mode is replaced, not trusted
            os.write(fd, body.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


def expires_at_from(now: datetime, expires_in: Any) -> datetime:
    try:
        return now + timedelta(seconds=float(expires_in))
    except (TypeError, ValueError):
        return now + DEFAULT_LIFETIME


def refusal(provider: OAuthConfig, answer: dict[str, Any]) -> OAuthError:
    error = str(answer.get("error", "?"))
    description = str(answer.get("error_description", "")).splitlines()[0:1]
    detail = f"{error}: {description[0]}" if description else error
    return OAuthError(provider, _STAGES.get(error, "endpoint"), detail)


class ProviderSession(requests.Session):
    """HTTP to one token endpoint: its `ca_file` and `timeout` on every request, for msal and
    google-auth too. requests lets $REQUESTS_CA_BUNDLE win over `Session.verify`, so a
    private CA is set where the environment is merged, after it."""

    def __init__(self, provider: OAuthConfig) -> None:
        super().__init__()
        self.ca_file = provider.ca_file
        self.timeout = provider.timeout

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.ca_file is not None:
            settings["verify"] = str(self.ca_file)
        return settings

    def send(self, request: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _session(provider: OAuthConfig) -> requests.Session:
    return ProviderSession(provider)


class GenericClient:
    """RFC 6749 token requests (client secret in the form body, as Microsoft and Google take)."""

    def __init__(self, provider: OAuthConfig, store: RefreshTokenStore) -> None:
        self.provider = provider
        self.store = store
        self.http = _session(provider)

    def form(self) -> dict[str, str]:
        provider = self.provider
        form = {"client_id": provider.client_id, "scope": " ".join(provider.scope)}
        secret = read_secret(provider, provider.client_secret_file)
        if secret:
            form["client_secret"] = secret
        if provider.grant == "refresh_token":
            refresh_token = self.store.load()
            if refresh_token is None:
                raise OAuthError(provider, "setup", f"no refresh token in {self.store.path}")
            form.update(grant_type="refresh_token", refresh_token=refresh_token)
        else:
            form["grant_type"] = "client_credentials"
        return form

    def post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        """The endpoint's JSON answer; a 4xx with an OAuth2 error comes back as it is."""
        try:
            response = self.http.post(url, data=form)
        except requests.RequestException as error:
            raise OAuthError(self.provider, "endpoint", type(error).__name__) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or (response.status_code >= 500 and "error" not in answer):
            raise OAuthError(
                self.provider, "endpoint", f"HTTP {response.status_code}, no OAuth2 answer"
            )
        return answer

    def fetch(self, subject: str, now: datetime) -> Issued:
        answer = self.post(self.provider.token_url, self.form())
        token = answer.get("access_token")
        if "error" in answer or not isinstance(token, str) or not token:
            raise refusal(self.provider, answer)
        refresh = answer.get("refresh_token")
        return Issued(token, expires_at_from(now, answer.get("expires_in")), refresh or None)


def certificate_credential(path: Path) -> dict[str, str]:
    """msal's credential for a certificate: the private key and the SHA-1 thumbprint of the
    certificate in the same PEM file, as the app registration shows it."""
    pem = path.read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    digest = hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest()
    return {"private_key": pem.decode(), "thumbprint": digest.upper()}


class MicrosoftClient:
    """The Microsoft identity platform through msal: client credentials with a secret or a
    certificate (confidential client), or a delegated refresh token (public client)."""

    def __init__(self, provider: OAuthConfig, store: RefreshTokenStore) -> None:
        self.provider = provider
        self.store = store
        self.scopes = [s for s in provider.scope if s not in _MSAL_RESERVED]
        self._app: msal.ClientApplication | None = None

    def app(self) -> msal.ClientApplication:
        """Built once (msal reads the authority's OpenID configuration when it is built)."""
        if self._app is not None:
            return self._app
        provider = self.provider
        options: dict[str, Any] = {
            "authority": provider.authority_url,
            "http_client": _session(provider),
            # Instance discovery asks login.microsoftonline.com about the host: the sovereign
            # clouds and a test endpoint are the admin's word, not Microsoft's list.
            "instance_discovery": False,
            "token_cache": msal.TokenCache(),
        }
        credential: Any = read_secret(provider, provider.client_secret_file)
        if provider.certificate_file is not None:
            try:
                credential = certificate_credential(provider.certificate_file)
            except (OSError, ValueError) as error:
                detail = f"certificate_file: {type(error).__name__}: {error}"
                raise OAuthError(provider, "client", detail) from None
        try:
            if provider.grant == "client_credentials":
                self._app = msal.ConfidentialClientApplication(
                    provider.client_id, client_credential=credential, **options
                )
            else:
                self._app = msal.PublicClientApplication(provider.client_id, **options)
        except ValueError as error:  # the authority's configuration could not be read
            raise OAuthError(provider, "endpoint", str(error).split(". ")[0]) from None
        except requests.RequestException as error:
            raise OAuthError(provider, "endpoint", type(error).__name__) from None
        return self._app

    def fetch(self, subject: str, now: datetime) -> Issued:
        app = self.app()
        # msal would hand back its cached token; ticketd asks only when it wants a new one.
        for cached in app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN):
            app.token_cache.remove_at(cached)
        try:
            if isinstance(app, msal.ConfidentialClientApplication):
                answer = app.acquire_token_for_client(self.scopes)
            else:
                refresh_token = self.store.load()
                if refresh_token is None:
                    raise OAuthError(
                        self.provider, "setup", f"no refresh token in {self.store.path}"
                    )
                answer = app.acquire_token_by_refresh_token(refresh_token, self.scopes)
        except requests.RequestException as error:
            raise OAuthError(self.provider, "endpoint", type(error).__name__) from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise refusal(self.provider, answer if isinstance(answer, dict) else {})
        refresh = answer.get("refresh_token")
        return Issued(token, expires_at_from(now, answer.get("expires_in")), refresh or None)


class GoogleClient:
    """Google through google-auth: a service account acting as the mailbox (domain-wide
    delegation), or a user's refresh token."""

    def __init__(self, provider: OAuthConfig, store: RefreshTokenStore) -> None:
        self.provider = provider
        self.store = store
        self.request = google.auth.transport.requests.Request(_session(provider))

    def credentials(self, subject: str) -> Any:
        provider = self.provider
        if provider.grant == "service_account":
            assert provider.service_account_file is not None
            accounts = google.oauth2.service_account.Credentials
            try:
                return accounts.from_service_account_file(  # type: ignore[no-untyped-call]
                    str(provider.service_account_file), scopes=provider.scope, subject=subject
                )
            except (ValueError, KeyError, OSError) as error:
                detail = f"service_account_file: {type(error).__name__}"
                raise OAuthError(provider, "client", detail) from None
        refresh_token = self.store.load()
        if refresh_token is None:
            raise OAuthError(provider, "setup", f"no refresh token in {self.store.path}")
        return google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
            None,
            refresh_token=refresh_token,
            token_uri=provider.token_url,
            client_id=provider.client_id,
            client_secret=read_secret(provider, provider.client_secret_file),
            scopes=list(provider.scope),
        )

    def fetch(self, subject: str, now: datetime) -> Issued:
        credentials = self.credentials(subject)
        try:
            credentials.refresh(self.request)
        except google.auth.exceptions.RefreshError as error:
            answer = error.args[1] if len(error.args) > 1 else None
            if isinstance(answer, dict) and "error" in answer:
                raise refusal(self.provider, answer) from None
            raise OAuthError(self.provider, "endpoint", str(error.args[0])[:200]) from None
        except google.auth.exceptions.TransportError as error:
            raise OAuthError(self.provider, "endpoint", type(error).__name__) from None
        # google-auth keeps the expiry as a naive UTC time.
        expiry = credentials.expiry
        expires_at = expiry.replace(tzinfo=UTC) if expiry else now + DEFAULT_LIFETIME
        return Issued(str(credentials.token), expires_at)


def make_client(provider: OAuthConfig) -> TokenClient:
    store = RefreshTokenStore(provider.refresh_token_file)
    if provider.kind == "microsoft":
        return MicrosoftClient(provider, store)
    if provider.kind == "google":
        return GoogleClient(provider, store)
    return GenericClient(provider, store)
