-- Sign-ins through external OpenID Connect providers in progress: the browser holds the
-- state in a cookie; this row holds what must not leave the server (nonce, PKCE verifier).
CREATE TABLE oidc_flows (
    state_hash TEXT PRIMARY KEY,          -- blake3 of the state parameter
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_flows_expiry ON oidc_flows(expires_at);

CREATE INDEX invitations_org ON invitations(org_id);
