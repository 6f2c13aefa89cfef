#!/usr/bin/env bash
# Builds the runtime of the Containerfile from Debian packages alone and starts it: no
# registry, no container engine. make test runs it (scripts/test.sh, "the image").
#
#   scripts/image.sh <release hb> [<OCI layout dir to keep>]
#
# 1. mmdebstrap: a minimal Debian bookworm root filesystem (variant essential) with the
#    Containerfile's runtime packages (ca-certificates git openssh-client), user 10001, /data,
#    and the given `hb` at /usr/local/bin/hb;
# 2. umoci: packed as an OCI image layout, ghcr.io/hexabase/hexabase:<version>, with the
#    Containerfile's config (entrypoint, cmd, env, user 10001, labels version and revision);
# 3. umoci unpack, then bwrap as uid 10001 (unprivileged: setpriv, then user namespaces) with
#    the image's own args, env and working directory, a temporary /data and a free port;
#    waits until /readyz answers 200, checks the packages are there, and stops it.
# Each step prints how long it took. Needs mmdebstrap, umoci, bwrap, setpriv, python3 and
# the network to a Debian mirror; exits 3 when a tool is missing.
set -euo pipefail

hb="$(realpath "${1:?usage: scripts/image.sh <release hb> [<OCI layout dir>]}")"
keep="${2:-}"
packages="ca-certificates,git,openssh-client"
suite="bookworm"
repository="ghcr.io/hexabase/hexabase"

for tool in mmdebstrap umoci bwrap setpriv python3; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is missing" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "image.sh: mmdebstrap and umoci run as root here" >&2; exit 3; }

# "hb 0.1.0 (commit 0123456789ab)"
read -r _ version _ revision < <("$hb" --version)
revision="${revision%)}"
tag="$version"

work="$(mktemp -d "${TMPDIR:-/tmp}/hb-image.XXXXXX")"
chmod 0755 "$work"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

timed() {
  local what="$1" start=$SECONDS
  shift
  "$@"
  echo "image.sh: $what took $((SECONDS - start)) s"
}

# 1. The root filesystem, as the Containerfile's runtime stage makes it.
timed "mmdebstrap ($suite, $packages)" mmdebstrap --quiet --variant=essential --mode=root \
  --include="$packages" \
  --customize-hook='chroot "$1" groupadd --gid 10001 hexabase' \
  --customize-hook='chroot "$1" useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin hexabase' \
  --customize-hook='install -d -o 10001 -g 10001 -m 0750 "$1/data"' \
  --customize-hook="install -D -m 0755 '$hb' \"\$1/usr/local/bin/hb\"" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  --skip=output/dev \
  "$suite" "$work/rootfs.tar"

# 2. The OCI image layout.
layout="$work/oci"
image="$layout:$tag"
pack() {
  umoci init --layout "$layout"
  umoci new --image "$image"
  umoci raw add-layer --image "$image" "$work/rootfs.tar"
  umoci config --image "$image" \
    --author "Hexabase" \
    --config.user 10001:10001 \
    --config.entrypoint /usr/local/bin/hb \
    --config.cmd serve \
    --config.workingdir /data \
    --config.volume /data \
    --config.exposedports 8080/tcp --config.exposedports 9090/tcp \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env HEXABASE_LISTEN=0.0.0.0:8080 \
    --config.env HEXABASE_METRICS_LISTEN=0.0.0.0:9090 \
    --config.env HEXABASE_DATA_DIR=/data \
    --config.env MALLOC_ARENA_MAX=2 \
    --config.label org.opencontainers.image.title=hexabase \
    --config.label org.opencontainers.image.version="$version" \
    --config.label org.opencontainers.image.revision="$revision" \
    --config.label org.opencontainers.image.ref.name="$repository:$tag"
  rm -f "$work/rootfs.tar"
}
timed "umoci: the OCI layout $repository:$tag" pack

# 3. Start it: unpack, then run the image's own process as uid 10001.
unpack() {
  umoci unpack --image "$image" "$work/bundle" >/dev/null
  chmod 0755 "$work/bundle" # umoci makes it 0700; uid 10001 must reach the root filesystem
  mkdir -p "$work/bundle/rootfs/dev" "$work/bundle/rootfs/proc" "$work/bundle/rootfs/tmp" # mount points
}
timed "umoci unpack" unpack
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
data="$work/data"
install -d -o 10001 -g 10001 -m 0750 "$data"
mapfile -t run < <(python3 - "$work/bundle/config.json" "$port" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
process = config["process"]
assert process["user"]["uid"] == 10001 and process["user"]["gid"] == 10001, process["user"]
print("--chdir"); print(process.get("cwd", "/"))
for pair in process["env"]:
    key, _, value = pair.partition("=")
    if key == "HEXABASE_LISTEN":
        value = f"127.0.0.1:{sys.argv[2]}"
    if key == "HEXABASE_METRICS_LISTEN":
        value = "off"
    print("--setenv"); print(key); print(value)
print("--")
for arg in process["args"]:
    print(arg)
PY
)
rootfs="$work/bundle/rootfs"
start=$SECONDS
setpriv --reuid 10001 --regid 10001 --clear-groups \
  bwrap --unshare-all --share-net --die-with-parent --new-session --clearenv \
  --ro-bind "$rootfs" / --proc /proc --dev /dev --tmpfs /tmp --bind "$data" /data \
  "${run[@]}" >"$work/serve.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 240); do
  if "$hb" health --timeout-seconds 2 --url "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "image.sh: the image did not answer /readyz; its output:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
echo "image.sh: the image answered /readyz in $((SECONDS - start)) s"

# What runs inside is the image's: its hb, its git and ssh, as uid 10001, on /data.
inside() {
  setpriv --reuid 10001 --regid 10001 --clear-groups \
    bwrap --unshare-all --die-with-parent --clearenv --setenv PATH /usr/bin:/bin:/usr/local/bin \
    --ro-bind "$rootfs" / --proc /proc --dev /dev --tmpfs /tmp "$@"
}
inside hb --version | grep -qx "hb $version (commit $revision)" || { echo "image.sh: hb --version inside" >&2; exit 1; }
inside git --version >/dev/null
inside ssh -V 2>/dev/null
[ -f "$rootfs/etc/ssl/certs/ca-certificates.crt" ] || { echo "image.sh: no CA certificates" >&2; exit 1; }
[ "$(inside id -u)" = 10001 ] || { echo "image.sh: not uid 10001" >&2; exit 1; }
ls "$data"/* >/dev/null || { echo "image.sh: nothing written under /data" >&2; exit 1; }
echo "image.sh: $repository:$tag (revision $revision) runs as uid 10001 and serves /readyz"

if [ -n "$keep" ]; then
  rm -rf "$keep"
  mkdir -p "$(dirname "$keep")"
  cp -a "$layout" "$keep"
  echo "image.sh: the OCI layout is in $keep"
fi
