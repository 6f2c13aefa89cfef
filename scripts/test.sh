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

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "the compiler stays pure"
if cargo tree -p compiler -e normal --prefix none --locked | grep -E '^(tokio|sqlx|git2|octocrab|kube|reqwest|hyper) '; then
  echo "compiler must not depend on IO, async, git or SQL crates" >&2
  exit 1
fi

step "tools for the remote tests (sshd, git http-backend)"
# server/tests/remote.rs runs a loopback sshd and git http-backend; install them when missing.
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/lib/git-core/git-http-backend ] || missing+=(git)
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

step "tests"
cargo test --workspace --locked
