"""Responses of the authorization server, for the OpenAPI document.

The routes write pre-encoded JSON; these models describe it (RFC 6749 §5.1 and §5.2,
RFC 7662 §2.2, RFC 8414 §2, RFC 7517 §5).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class TokenResponse(BaseModel):
    access_token: str = Field(description="JWT (RFC 9068), typ at+jwt, lié au certificat")
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Durée de validité en secondes")
    scope: str = Field(examples=["documents"])


class OAuthErrorResponse(BaseModel):
    error: str = Field(examples=["invalid_client"])
    error_description: str


class Confirmation(BaseModel):
    x5t_s256: str = Field(alias="x5t#S256")


class IntrospectionResponse(BaseModel):
    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None
    cnf: Confirmation | None = None
    ensu_env: str | None = None
    id_teleservice: str | None = None


class JsonWebKey(BaseModel):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    alg: str
    use: str


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey]


class AuthorizationServerMetadata(BaseModel):
    issuer: str
    token_endpoint: str
    jwks_uri: str
    introspection_endpoint: str
    revocation_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    tls_client_certificate_bound_access_tokens: bool
