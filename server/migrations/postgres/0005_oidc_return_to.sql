-- Where a browser goes once its sign-in through an external provider succeeds: a path on
-- this server (the sign-in page checks it), such as the authorization request that sent it
-- to sign in.
ALTER TABLE oidc_flows ADD COLUMN return_to TEXT;
