"""Google as an OpenID Connect provider, over httpx: discovery, code exchange, ID token checks, refresh.

Discovery starts from the configured issuer (`{issuer}/.well-known/openid-configuration`) and is cached for
an hour; the JWKS is cached too and fetched again once when a token names a key id it does not hold (the
provider rotated its keys). ID tokens are checked with joserfc: RS256 signature against the JWKS, `iss`,
`aud` (and `azp` when several audiences), `exp`/`iat` with a minute of leeway, and `nonce`. HTTP failures
end here as domain errors; no token or secret is logged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from identity.service.ports import GrantRejected, TokenGrant
from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("identity.oidc")
DISCOVERY_TTL_SECONDS = 3600.0
LEEWAY_SECONDS = 60
# Google's ID tokens may carry the issuer with or without the scheme.
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


def _unavailable(what: str) -> errors.Unavailable:
    return errors.Unavailable(
        f"the Google sign-in provider did not answer ({what}); try again shortly",
        reason="GOOGLE_UNAVAILABLE",
        retry_after=5.0,
    )


def _invalid_token(why: str) -> errors.Unauthenticated:
    return errors.Unauthenticated(f"the ID token was refused: {why}", reason="ID_TOKEN_INVALID")


class GoogleOpenId:
    """The provider, configured by issuer URL and OAuth client credentials."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        token_uri: str = "",
        revocation_uri: str = "",
    ) -> None:
        self.http = http
        self.issuer = issuer.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_uri = token_uri
        self._revocation_uri = revocation_uri
        self._metadata: dict[str, Any] = {}
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    @property
    def client_id(self) -> str:
        """The OAuth client id."""
        return self._client_id

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url)
        except httpx.HTTPError as exc:
            log.warning("oidc.request_failed", what=what, error=type(exc).__name__)
            raise _unavailable(what) from None
        if response.status_code != 200:
            log.warning("oidc.request_failed", what=what, status=response.status_code)
            raise _unavailable(what)
        try:
            body = response.json()
        except ValueError:
            raise _unavailable(what) from None
        if not isinstance(body, dict):
            raise _unavailable(what)
        return body

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, checked to belong to the configured issuer."""
        if self._metadata and time.monotonic() - self._metadata_at < DISCOVERY_TTL_SECONDS:
            return self._metadata
        found = await self._get_json(f"{self.issuer}/.well-known/openid-configuration", "discovery")
        if str(found.get("issuer", "")).rstrip("/") != self.issuer:
            log.error("oidc.issuer_mismatch", configured=self.issuer, discovered=found.get("issuer"))
            raise _unavailable("discovery names another issuer")
        self._metadata, self._metadata_at = found, time.monotonic()
        return found

    async def _endpoint(self, name: str, override: str = "") -> str:
        if override:
            return override
        value = (await self.metadata()).get(name)
        return value if isinstance(value, str) else ""

    async def authorization_endpoint(self) -> str:
        """Where the browser is sent to sign in."""
        endpoint = await self._endpoint("authorization_endpoint")
        if not endpoint:
            raise _unavailable("discovery lacks an authorization endpoint")
        return endpoint

    async def _post_token(self, form: dict[str, str], what: str) -> dict[str, Any]:
        endpoint = await self._endpoint("token_endpoint", self._token_uri)
        if not endpoint:
            raise _unavailable("discovery lacks a token endpoint")
        body = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            response = await self.http.post(endpoint, data=body, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.warning("oidc.request_failed", what=what, error=type(exc).__name__)
            raise _unavailable(what) from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code >= 500 or response.status_code == 429:
            log.warning("oidc.request_failed", what=what, status=response.status_code)
            raise _unavailable(what)
        if response.status_code != 200:
            error = str(answer.get("error", "")) or f"HTTP {response.status_code}"
            log.info("oidc.token_refused", what=what, status=response.status_code, error=error[:64])
            answer = {"error": error}
        return answer

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> str:
        """The ID token for an authorization code; UNAUTHENTICATED AUTHORIZATION_CODE_INVALID when refused."""
        answer = await self._post_token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
            "code exchange",
        )
        if "error" in answer:
            raise errors.Unauthenticated(
                f"the provider refused the authorization code ({answer['error'][:64]})",
                reason="AUTHORIZATION_CODE_INVALID",
            )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise _invalid_token("the token response carries no ID token")
        return id_token

    async def _key_set(self, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            uri = await self._endpoint("jwks_uri")
            if not uri:
                raise _unavailable("discovery lacks a JWKS URI")
            try:
                self._keys = KeySet.import_key_set(await self._get_json(uri, "JWKS"))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError):
                raise _unavailable("the JWKS is malformed") from None
        return self._keys

    async def _decode(self, id_token: str) -> jwt.Token:
        try:
            return jwt.decode(id_token, await self._key_set(refresh=False), algorithms=["RS256"])
        except InvalidKeyIdError:
            pass
        except JoseError as exc:
            raise _invalid_token(exc.error) from None
        try:
            return jwt.decode(id_token, await self._key_set(refresh=True), algorithms=["RS256"])
        except JoseError as exc:
            raise _invalid_token(
                "signed by a key the provider does not publish"
                if isinstance(exc, InvalidKeyIdError)
                else exc.error
            ) from None

    async def verify_id_token(self, id_token: str, nonce: str) -> Mapping[str, Any]:
        """The claims of a verified ID token."""
        token = await self._decode(id_token)
        issuers = list(GOOGLE_ISSUERS) if self.issuer == GOOGLE_ISSUERS[0] else [self.issuer]
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "values": issuers},
            aud={"essential": True, "value": self._client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", "")
            raise _invalid_token(f"{exc.error} {claim}".strip()) from None
        audiences = token.claims.get("aud")
        if isinstance(audiences, list) and len(audiences) > 1 and token.claims.get("azp") != self._client_id:
            raise _invalid_token("issued to another authorized party")
        return token.claims

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """A fresh access token for a refresh token."""
        answer = await self._post_token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, "token refresh"
        )
        if answer.get("error") == "invalid_grant":
            raise GrantRejected()
        if "error" in answer:
            raise errors.Unavailable(
                f"the provider refused to refresh the grant ({answer['error'][:64]})",
                reason="PROVIDER_UNAVAILABLE",
                retry_after=30.0,
            )
        access_token = answer.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise errors.Unavailable(
                "the provider's token response carries no access token",
                reason="PROVIDER_UNAVAILABLE",
                retry_after=30.0,
            )
        rotated = answer.get("refresh_token")
        scope = answer.get("scope")
        return TokenGrant(
            access_token=access_token,
            expires_in=int(answer.get("expires_in") or 3600),
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            refresh_token=rotated if isinstance(rotated, str) and rotated else None,
        )

    async def revoke(self, token: str) -> bool:
        """Revokes a token at the provider (RFC 7009); an already invalid token counts as revoked."""
        endpoint = await self._endpoint("revocation_endpoint", self._revocation_uri)
        if not endpoint:
            return False
        try:
            response = await self.http.post(
                endpoint,
                data={"token": token, "client_id": self._client_id, "client_secret": self._client_secret},
            )
        except httpx.HTTPError as exc:
            raise errors.Unavailable(
                f"token revocation failed ({type(exc).__name__})", reason="PROVIDER_UNAVAILABLE"
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise errors.Unavailable(
                f"token revocation failed (HTTP {response.status_code})", reason="PROVIDER_UNAVAILABLE"
            )
        return True
