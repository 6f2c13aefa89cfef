-- The server as the OpenID Connect issuer every vCluster trusts.

-- Signing keys. A key is published (in the JWKS) from created_at, signs from activate_at,
-- and once a newer key signs, stays published until retire_at: after every token it signed
-- has expired. Rows past retire_at are deleted.
CREATE TABLE oidc_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    private_pem TEXT NOT NULL,            -- PKCS#8 PEM
    public_jwk TEXT NOT NULL,             -- the JWK, JSON
    created_at INTEGER NOT NULL,
    activate_at INTEGER NOT NULL,
    retire_at INTEGER
);

-- Authorization codes (code flow with PKCE): single use, short-lived, stored hashed and bound
-- to the client, the redirect URI and the S256 code challenge.
CREATE TABLE oidc_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    nonce TEXT,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oidc_codes_expiry ON oidc_codes(expires_at);

-- Device authorization grants (RFC 8628): the device code and the user code, both hashed;
-- user_id is set when the user approves, denied when they refuse.
CREATE TABLE oidc_device_grants (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    denied INTEGER NOT NULL DEFAULT 0,
    polled_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oidc_device_grants_expiry ON oidc_device_grants(expires_at);

-- Refresh tokens: opaque, hashed, rotated on use. A token used twice revokes its family.
CREATE TABLE oidc_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX oidc_refresh_tokens_family ON oidc_refresh_tokens(family_id);
CREATE INDEX oidc_refresh_tokens_expiry ON oidc_refresh_tokens(expires_at);
