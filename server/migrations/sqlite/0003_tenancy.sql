-- The head the workspace index was last brought up to; the next sync walks only the commits
-- after it (all of them when it is missing or no longer an ancestor of the head).
CREATE TABLE workspace_index_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    head TEXT NOT NULL
);

-- A workspace's current subscription is looked up at every plan change and deletion.
CREATE INDEX subscriptions_workspace ON subscriptions(org_id, workspace, ended_at);
