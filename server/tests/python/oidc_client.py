"""An independent OpenID Connect client of the Hexabase issuer.

Run by server/tests/oidc_python.rs against the real `hb serve`, with the project's venv
(.tools/venv, made by scripts/tools.sh). It uses libraries nobody here wrote: authlib's
OAuth2Session for the authorization code flow with PKCE and the refresh, PyJWT's
PyJWKClient and authlib's JOSE for verifying ID tokens against the published discovery
document and key set. It then holds both verifiers to every forged or misused token the
Rust side made (`forgeries`): each must be refused, and the `control` (the genuine claims
signed again) accepted.

The issuer URL (what `iss` says) is not where this test's server listens: in production an
ingress maps it to the server. `local()` plays that part, mapping issuer URLs to the server.

Usage: oidc_client.py <config.json>
"""

import json
import sys
import time
import urllib.parse

import warnings

import jwt
from jwt import PyJWKClient
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
with warnings.catch_warnings():
    # authlib.jose warns that joserfc replaces it; it is still authlib's verifier.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, JsonWebToken

failures = []
checks = 0

# What a verifier is known to accept although it should not, with the reason. PyJWT turns a
# string `exp` into a number with int() (RFC 7519 wants a JSON number); the issuer's own
# validator and authlib refuse it, and kube-apiserver's go-oidc does too.
KNOWN_LENIENT = {("PyJWT", "exp as a numeric string")}


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def main(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    base, issuer, client_id = cfg["base"], cfg["issuer"], cfg["client_id"]
    issuer_path = urllib.parse.urlparse(issuer).path.rstrip("/")

    def local(url):
        check(url.startswith(issuer), f"{url} is under the issuer {issuer}")
        return base + issuer_path + url[len(issuer.rstrip("/")):]

    doc = requests.get(f"{base}{issuer_path}/.well-known/openid-configuration", timeout=30).json()
    check(doc["issuer"] == issuer, f"discovery names the issuer: {doc['issuer']}")
    check(doc["code_challenge_methods_supported"] == ["S256"], "PKCE is S256 only")

    # The authorization code flow with PKCE, driven by authlib. The loopback redirect is
    # captured by not following it.
    redirect_uri = "http://127.0.0.1:18765/callback"
    session = OAuth2Session(
        client_id,
        redirect_uri=redirect_uri,
        scope="openid email groups",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(64)
    url, state = session.create_authorization_url(
        local(doc["authorization_endpoint"]), code_verifier=verifier, nonce="py-nonce"
    )
    answer = requests.get(
        url, cookies={"hb_session": cfg["session"]}, allow_redirects=False, timeout=30
    )
    check(answer.status_code in (302, 303), f"authorize redirects: {answer.status_code} {answer.text}")
    location = answer.headers["Location"]
    check(location.startswith(redirect_uri), f"back to the loopback redirect: {location}")
    token = session.fetch_token(
        local(doc["token_endpoint"]),
        authorization_response=location,
        code_verifier=verifier,
        state=state,
    )
    id_token = token["id_token"]

    jwks_client = PyJWKClient(local(doc["jwks_uri"]))
    key_set = JsonWebKey.import_key_set(requests.get(local(doc["jwks_uri"]), timeout=30).json())
    authlib_jwt = JsonWebToken(["RS256", "ES256"])

    def pyjwt_verify(tok):
        key = jwks_client.get_signing_key_from_jwt(tok)
        return jwt.decode(
            tok,
            key.key,
            algorithms=["RS256", "ES256"],
            audience=client_id,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            leeway=0,
        )

    def authlib_verify(tok):
        claims = authlib_jwt.decode(
            tok,
            key_set,
            claims_options={
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "iat": {"essential": True},
            },
        )
        claims.validate(now=int(time.time()), leeway=0)
        return claims

    claims = pyjwt_verify(id_token)
    check(claims["nonce"] == "py-nonce", "the nonce comes back")
    groups = claims.get(cfg["groups_claim"], [])
    check("WSAdmins" in groups and "WorkspaceMembers" in groups, f"flattened groups: {groups}")
    check(all(not g.startswith("system:") for g in groups), f"no system: groups: {groups}")
    check(0 < claims["exp"] - claims["iat"] <= 900, "at most 15 minutes")
    check(dict(authlib_verify(id_token))["sub"] == claims["sub"], "authlib agrees")

    # Refresh, through authlib again.
    refreshed = session.refresh_token(
        local(doc["token_endpoint"]), refresh_token=token["refresh_token"]
    )
    check(refreshed["refresh_token"] != token["refresh_token"], "the refresh token rotates")
    check(pyjwt_verify(refreshed["id_token"])["sub"] == claims["sub"], "the refreshed token verifies")

    for name, forged in cfg["forgeries"]:
        for verifier_name, verify in (("PyJWT", pyjwt_verify), ("authlib", authlib_verify)):
            try:
                verify(forged)
                accepted = True
            except Exception as error:  # noqa: BLE001 - any refusal is a refusal
                accepted = False
                reason = f"{type(error).__name__}: {error}"
            if name == "control":
                check(accepted, f"{verifier_name} accepts the control token ({'' if accepted else reason})")
            elif (verifier_name, name) in KNOWN_LENIENT:
                print(f"NOTE: {verifier_name} {'accepts' if accepted else 'refuses'}: {name} (known lenient)")
            else:
                check(not accepted, f"{verifier_name} refuses: {name}")

    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0




if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
