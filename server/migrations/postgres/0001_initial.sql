-- Hexabase's SQL store: what is not a Kubernetes object (DESIGN.md §2).
-- Times are Unix seconds (BIGINT); ids are text (UUID v7 unless said otherwise).
-- Never edit a migration that has shipped; add a new one.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,           -- lowercased
    name TEXT NOT NULL,
    password_hash TEXT,                   -- argon2id PHC string; NULL for external sign-in only
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,  -- platform administrator
    created_at BIGINT NOT NULL
);

-- Sign-in through external OpenID Connect providers: (issuer, subject) -> user.
CREATE TABLE external_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- Browser sessions: only a hash of the cookie value is stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- API tokens for the CLI and automation: only a hash is stored.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- The one-time setup token printed at the first start (hash only); consumed by the first sign-up.
CREATE TABLE setup (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    token_hash TEXT,
    created_at BIGINT NOT NULL
);

-- Organizations: the slug is the organization's name in Git (intent/<slug>/).
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    personal BOOLEAN NOT NULL DEFAULT FALSE,  -- the private organization made at sign-up
    created_at BIGINT NOT NULL
);

-- Organization users: owners manage billing, organization users and workspaces;
-- billing managers manage billing only. Neither gets anything inside a workspace by that alone.
CREATE TABLE organization_members (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'billing')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX organization_members_user ON organization_members(user_id);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'billing')),
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT
);

-- The index of workspaces, rebuilt from Git at start and after every commit; Git is the truth.
CREATE TABLE workspaces (
    org_slug TEXT NOT NULL,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    cluster TEXT NOT NULL,
    display_name TEXT,
    projects BIGINT NOT NULL DEFAULT 0,
    commit_id TEXT NOT NULL,              -- the head it was read from
    PRIMARY KEY (org_slug, name)
);

-- Workspace groups: the OIDC groups claim, a hierarchy per workspace.
CREATE TABLE workspace_groups (
    id TEXT PRIMARY KEY,
    org_slug TEXT NOT NULL,
    workspace TEXT NOT NULL,
    name TEXT NOT NULL,
    parent_id TEXT REFERENCES workspace_groups(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    UNIQUE (org_slug, workspace, name)
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES workspace_groups(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

-- Billing: plan prices (plans themselves are platform config in Git) and subscriptions.
CREATE TABLE plan_prices (
    plan TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    monthly_cents BIGINT NOT NULL CHECK (monthly_cents >= 0)
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    workspace TEXT NOT NULL,
    plan TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX subscriptions_org ON subscriptions(org_id);

-- The job outbox: side effects that must happen after a commit (pushes, SQL follow-ups).
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,                -- JSON
    request_id TEXT,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at BIGINT
);
CREATE INDEX outbox_pending ON outbox(done_at, id);
