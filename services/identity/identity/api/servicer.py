"""The gRPC face of the identity service: thin servicers converting between protos and domain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc

from comfyapi.identity.v1 import identity_service_pb2 as pb
from comfyapi.identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity.api import convert
from identity.service.api_keys import ApiKeyService
from identity.service.ports import Clock
from identity.service.sessions import SessionService
from identity.service.signin import SignInService
from identity.service.users import UserService
from identity.service.vault import VaultService
from servicekit import context
from servicekit.server import Registration

DESCRIPTOR = pb.DESCRIPTOR.services_by_name["IdentityService"]
Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class Services:
    """The use cases the servicer calls."""

    clock: Clock
    users: UserService
    signin: SignInService
    sessions: SessionService
    api_keys: ApiKeyService
    vault: VaultService
    cache_ttl: timedelta


def _current_session() -> str:
    caller = context.principal()
    return caller.credential_id if caller is not None and caller.kind == "session" else ""


class IdentityServiceServicer(pb_grpc.IdentityServiceServicer):
    """Answers the IdentityService contract."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        return pb.GetUserResponse(user=convert.user(await self.s.users.get(request.name)))

    async def UpdateUser(self, request: pb.UpdateUserRequest, context: Context) -> pb.UpdateUserResponse:
        paths = list(request.update_mask.paths) or ["display_name"]
        user = await self.s.users.rename(request.user.name, request.user.display_name, paths)
        return pb.UpdateUserResponse(user=convert.user(user))

    async def DeleteUser(self, request: pb.DeleteUserRequest, context: Context) -> pb.DeleteUserResponse:
        counts = await self.s.users.delete(request.name, request.request_id)
        return pb.DeleteUserResponse(
            revoked_api_key_count=counts.api_keys,
            revoked_session_count=counts.sessions,
            revoked_grant_count=counts.grants,
        )

    async def SetUserPlan(self, request: pb.SetUserPlanRequest, context: Context) -> pb.SetUserPlanResponse:
        user = await self.s.users.set_plan(request.owner, request.plan_id, request.revision)
        return pb.SetUserPlanResponse(user=convert.user(user))

    async def BeginGoogleSignIn(
        self, request: pb.BeginGoogleSignInRequest, context: Context
    ) -> pb.BeginGoogleSignInResponse:
        start = await self.s.signin.begin(request.redirect_uri, request.return_path)
        return pb.BeginGoogleSignInResponse(
            authorization_uri=start.authorization_uri,
            state=start.state,
            expire_time=convert.timestamp(start.expire_time),
        )

    async def CompleteGoogleSignIn(
        self, request: pb.CompleteGoogleSignInRequest, context: Context
    ) -> pb.CompleteGoogleSignInResponse:
        done = await self.s.signin.complete(
            request.code, request.state, request.user_agent, request.client_ip
        )
        return pb.CompleteGoogleSignInResponse(
            user=convert.user(done.user),
            session=convert.session(done.opened.session),
            session_token=done.opened.token,
            csrf_token=done.opened.csrf_token,
            new_user=done.new_user,
            return_path=done.return_path,
        )

    async def AuthenticateSession(
        self, request: pb.AuthenticateSessionRequest, context: Context
    ) -> pb.AuthenticateSessionResponse:
        found = await self.s.sessions.authenticate(request.session_token)
        return pb.AuthenticateSessionResponse(
            principal=convert.principal(found.principal),
            session=convert.session(found.session, found.principal.credential_id),
            csrf_token=found.csrf_token,
            cache_ttl=convert.duration(self.s.cache_ttl),
        )

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        page, token = await self.s.sessions.page(request.page_size, request.page_token)
        current = _current_session()
        return pb.ListSessionsResponse(
            sessions=[convert.session(s, current) for s in page], next_page_token=token
        )

    async def RevokeSession(
        self, request: pb.RevokeSessionRequest, context: Context
    ) -> pb.RevokeSessionResponse:
        await self.s.sessions.revoke(request.name)
        return pb.RevokeSessionResponse()

    async def RevokeAllSessions(
        self, request: pb.RevokeAllSessionsRequest, context: Context
    ) -> pb.RevokeAllSessionsResponse:
        return pb.RevokeAllSessionsResponse(
            revoked_count=await self.s.sessions.revoke_all(request.keep_current)
        )

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: Context
    ) -> pb.CreateApiKeyResponse:
        expire = convert.from_timestamp(request.expire_time, request.HasField("expire_time"))
        created = await self.s.api_keys.create(request.display_name, list(request.scopes), expire)
        return pb.CreateApiKeyResponse(
            api_key=convert.api_key(created.api_key, self.s.clock.now()), key=created.key
        )

    async def ListApiKeys(self, request: pb.ListApiKeysRequest, context: Context) -> pb.ListApiKeysResponse:
        page, token = await self.s.api_keys.page(request.page_size, request.page_token, request.show_inactive)
        now = self.s.clock.now()
        return pb.ListApiKeysResponse(api_keys=[convert.api_key(k, now) for k in page], next_page_token=token)

    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: Context
    ) -> pb.RevokeApiKeyResponse:
        key = await self.s.api_keys.revoke(request.name)
        return pb.RevokeApiKeyResponse(api_key=convert.api_key(key, self.s.clock.now()))

    async def AuthenticateApiKey(
        self, request: pb.AuthenticateApiKeyRequest, context: Context
    ) -> pb.AuthenticateApiKeyResponse:
        found = await self.s.api_keys.authenticate(request.key)
        return pb.AuthenticateApiKeyResponse(
            principal=convert.principal(found), cache_ttl=convert.duration(self.s.cache_ttl)
        )

    async def StoreGrant(self, request: pb.StoreGrantRequest, context: Context) -> pb.StoreGrantResponse:
        grant = await self.s.vault.store_grant(
            request.owner,
            convert.provider(request.provider),
            request.refresh_token,
            list(request.scopes),
            (request.account_subject, request.account_email),
            request.request_id,
        )
        return pb.StoreGrantResponse(grant=convert.grant(grant))

    async def GetGrant(self, request: pb.GetGrantRequest, context: Context) -> pb.GetGrantResponse:
        return pb.GetGrantResponse(grant=convert.grant(await self.s.vault.get(request.name)))

    async def ListGrants(self, request: pb.ListGrantsRequest, context: Context) -> pb.ListGrantsResponse:
        page, token = await self.s.vault.page(request.page_size, request.page_token)
        return pb.ListGrantsResponse(grants=[convert.grant(g) for g in page], next_page_token=token)

    async def GetAccessToken(
        self, request: pb.GetAccessTokenRequest, context: Context
    ) -> pb.GetAccessTokenResponse:
        min_ttl = request.min_ttl.ToTimedelta() if request.HasField("min_ttl") else None
        token = await self.s.vault.access_token(request.owner, convert.provider(request.provider), min_ttl)
        return pb.GetAccessTokenResponse(
            access_token=token.token,
            expire_time=convert.timestamp(token.expire_time),
            scopes=list(token.scopes),
            grant=f"grants/{token.grant_id}",
        )

    async def RevokeGrant(self, request: pb.RevokeGrantRequest, context: Context) -> pb.RevokeGrantResponse:
        return pb.RevokeGrantResponse(
            grant=convert.grant(await self.s.vault.revoke(request.name, request.request_id))
        )


def registration(services: Services) -> Registration:
    """The servicer with the generated function that mounts it on a server."""
    return Registration(
        DESCRIPTOR, IdentityServiceServicer(services), pb_grpc.add_IdentityServiceServicer_to_server
    )
