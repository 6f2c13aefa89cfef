#!/usr/bin/env bash
# Runs every check and test, the same on a laptop and in CI (`make test`).
# Installs what it needs (kubectl, helm, a Python venv) under .tools/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
upstream="${HEXABASE_UPSTREAM:-../shared/upstream}"

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy: the fuzz targets (fuzz/ is a crate of its own; tests/tests/fuzz_corpus.rs replays its corpora)"
cargo clippy --manifest-path fuzz/Cargo.toml --target-dir target --bins --locked -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "the compiler stays pure"
if cargo tree -p compiler -e normal --prefix none --locked | grep -E '^(tokio|sqlx|git2|octocrab|kube|reqwest|hyper) '; then
  echo "compiler must not depend on IO, async, git or SQL crates" >&2
  exit 1
fi

step "the server keeps its layers (server/tests/architecture, ARCHITECTURE.md)"
cargo test -p server --test architecture --locked

step "tools for the remote, database and browser tests (sshd, git http-backend, PostgreSQL, Chromium)"
# server/tests/remote.rs runs a loopback sshd and git http-backend; the store tests need a
# PostgreSQL (below: the one that answers, or a throwaway one from these binaries);
# server/tests/oidc_browser.rs drives Debian's headless Chromium through chromedriver.
# Install them when missing.
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/lib/git-core/git-http-backend ] || missing+=(git)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# The image test (scripts/image.sh) builds and starts the Containerfile's runtime without an engine.
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v umoci >/dev/null || missing+=(umoci)
command -v bwrap >/dev/null || missing+=(bubblewrap)
# server/tests/release.rs verifies and rates packaging/systemd/hexabase.service.
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "conformance tools"
bash scripts/tools.sh
eval "$(bash scripts/tools.sh --print-env)"

step "conformance: the checker's own tests"
.tools/venv/bin/python tests/conformance/test_check_tree.py
.tools/venv/bin/python tests/conformance/test_day_one.py
.tools/venv/bin/python tests/conformance/test_policy_before_commit.py

step "conformance: gitops-repo-example against kustomize, helm and the upstream schemas"
if [ -d "$upstream" ]; then
  .tools/venv/bin/python tests/conformance/check_tree.py --tree gitops-repo-example --upstream "$upstream" \
    --kubectl .tools/bin/kubectl --helm .tools/bin/helm
elif [ -n "${CI:-}" ]; then
  echo "CI needs the upstream schemas at $upstream" >&2
  exit 1
else
  echo "SKIPPED: $upstream is missing, so the upstream schema checks cannot run (the rest still runs)"
fi

step "the chart: helm lint, helm template against the strict schemas, its variables are settings"
chart_out="$(mktemp -d)"
chart_sets=(
  ""
  "--set postgresql.enabled=true --set config.settingsToml=log_format='\"json\"' --set metrics.enabled=false"
  "--set database.secretName=db --set git.remote=ssh://git@example.com/fleet.git --set git.sshSecretName=git-ssh --set issuer.kubeconfigCaConfigMapName=vcluster-ca --set issuer.signingAlg=ES256"
  # The NetworkPolicy (ingress from one namespace, egress limited) and the ServiceMonitor.
  # ../shared/upstream has no Prometheus Operator CRD, so kubernetes-validate only warns that
  # it has no schema for the ServiceMonitor; every other kind is validated strictly.
  "--set networkPolicy.enabled=true --set-json networkPolicy.apiFrom=[{\"namespaceSelector\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"ingress\"}}}] --set-json networkPolicy.egress=[{\"to\":[{\"ipBlock\":{\"cidr\":\"10.0.0.0/8\"}}],\"ports\":[{\"port\":5432,\"protocol\":\"TCP\"}]}] --set metrics.serviceMonitor.enabled=true --set metrics.serviceMonitor.labels.release=prometheus --set podDisruptionBudget.maxUnavailable=0"
  "--set networkPolicy.enabled=true --set podDisruptionBudget.enabled=false --set metrics.enabled=false --set metrics.serviceMonitor.enabled=true"
)
for i in "${!chart_sets[@]}"; do
  # shellcheck disable=SC2086 # each entry is a list of helm flags
  .tools/bin/helm lint --strict --quiet charts/hexabase ${chart_sets[$i]}
  # shellcheck disable=SC2086
  .tools/bin/helm template hb charts/hexabase ${chart_sets[$i]} >"$chart_out/$i.yaml"
  .tools/venv/bin/kubernetes-validate -k 1.35.0 --strict --quiet "$chart_out/$i.yaml"
done
# Every HEXABASE_ variable the chart sets must be one `hb serve` knows (unknown keys are refused):
# load them with --print-config, the files they name left out (the kubeconfig CA, read at load,
# is the tests' own).
chart_env="$(.tools/venv/bin/python - "$chart_out/2.yaml" <<'PY'
import shlex, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap" and "HEXABASE_LISTEN" in doc.get("data", {}):
        for key, value in doc["data"].items():
            if key == "HEXABASE_ISSUER__KUBECONFIG_CA_FILE":
                # Read at start: point it at the tests' CA instead of the mount.
                print(f"{key}=server/tests/data/vcluster-ca.pem")
            elif key not in ("HEXABASE_DATABASE_URL_FILE", "HEXABASE_CONFIG"):
                print(f"{key}={shlex.quote(value)}")
PY
)"
[ -n "$chart_env" ] || { echo "the chart's ConfigMap sets no HEXABASE_ variables" >&2; exit 1; }
# shellcheck disable=SC2046 # one word per variable
env $(echo "$chart_env" | xargs) cargo run --locked --quiet -p server --bin hb -- serve --print-config >/dev/null
rm -rf "$chart_out"

step "the image: the Containerfile's runtime from Debian packages, as an OCI layout, answering /readyz"
# scripts/image.sh: mmdebstrap, umoci and bwrap as uid 10001, with the release hb (README, "Install").
cargo build --locked --release --quiet -p server --bin hb
image_status=0
bash scripts/image.sh "${CARGO_TARGET_DIR:-target}/release/hb" || image_status=$?
if [ "$image_status" = 3 ] && [ -z "${CI:-}" ]; then
  echo "SKIPPED: the image test needs mmdebstrap, umoci, bwrap and root (CI fails instead)"
elif [ "$image_status" != 0 ]; then
  exit "$image_status"
fi

step "PostgreSQL for the storage tests"
# The test suites read HEXABASE_TEST_POSTGRES (see server/tests/support/postgres.rs); each test
# creates and drops its own database there. When the default answers nothing, a throwaway
# PostgreSQL from the installed binaries runs in a temp folder for the length of this script.
pg_default="postgres://postgres@127.0.0.1:5432/test"
export HEXABASE_TEST_POSTGRES="${HEXABASE_TEST_POSTGRES:-$pg_default}"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
psql_cmd="$(command -v psql || echo "$pg_bin/psql")"
pg_answers() { [ -x "$psql_cmd" ] && "$psql_cmd" "$1" -XAtqc 'select 1' >/dev/null 2>&1; }
pg_dir=""
pg_as=""
stop_postgres() {
  if [ -n "$pg_dir" ]; then
    $pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
start_postgres() {
  [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ] || {
    echo "no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2
    return 1
  }
  pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/hb-postgres.XXXXXX")"
  trap stop_postgres EXIT
  pg_as=""
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: run the server as the postgres user.
    id -u postgres >/dev/null 2>&1 || { echo "running as root and no postgres user exists" >&2; return 1; }
    chown postgres "$pg_dir"
    pg_as="runuser -u postgres --"
  fi
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  $pg_as "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$pg_dir/initdb.log" 2>&1 \
    || { cat "$pg_dir/initdb.log" >&2; return 1; }
  $pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$pg_dir/server.log" >&2; return 1; }
  "$psql_cmd" "postgres://postgres@127.0.0.1:$port/postgres" -XAtqc 'create database test' >/dev/null
  HEXABASE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/test"
  echo "started a throwaway PostgreSQL at $HEXABASE_TEST_POSTGRES (stopped on exit)"
}
if pg_answers "$HEXABASE_TEST_POSTGRES"; then
  echo "PostgreSQL answers at $HEXABASE_TEST_POSTGRES"
elif [ "$HEXABASE_TEST_POSTGRES" != "$pg_default" ]; then
  echo "HEXABASE_TEST_POSTGRES=$HEXABASE_TEST_POSTGRES does not answer" >&2
  exit 1
elif ! start_postgres; then
  if [ -n "${CI:-}" ]; then
    echo "CI needs PostgreSQL: nothing answers at $pg_default and no throwaway one could start" >&2
    exit 1
  fi
  echo "WARNING: no PostgreSQL: the PostgreSQL tests will say SKIPPED (CI fails instead)"
fi

step "tests"
cargo test --workspace --locked --exclude compiler
# The compiler's property tests run 24 to 64 cases each by default (about 20 s); here 192 each
# (about 40 s more on two cores). PROPTEST_CASES is set for this crate only: the server's own
# property tests keep their counts.
PROPTEST_CASES="${PROPTEST_CASES:-192}" cargo test -p compiler --locked
