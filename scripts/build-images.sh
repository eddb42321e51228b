#!/usr/bin/env bash
# Builds the Dockerfile's images with buildah (no Docker daemon) and runs their entrypoints, on a machine that
# cannot pull base images: it debootstraps a minimal Debian bookworm, puts this machine's node and npm in it, and
# builds against that local stand-in (--build-arg NODE_IMAGE=…). Then it starts the Space image's `serve` and
# checks port 7860, GET /healthz, the image's own HEALTHCHECK and the uid (1000), and starts the CPU worker.
#
# NOT part of `npm test` or CI: it needs root, buildah and debootstrap (apt-get install -y buildah debootstrap),
# network to deb.debian.org and registry.npmjs.org, about 20 GB of free disk while it runs (vfs copies every layer
# whole) and 15-20 minutes on 2 cores.
# The gpu-worker target is not built here (no CUDA base image, no api.nuget.org); test/images lints it.
#
# Everything it makes lives in one temporary folder (buildah's storage included, so the host's images are not
# touched) that is removed at the end, pass or fail; --keep leaves it for a look. Exit 0 only when the builds and
# every run check pass. Usage: scripts/build-images.sh [--keep]   (README.md, "Deploying")
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/safe-lora-base:node
SPACE_PORT=7860
KEEP=0
[[ ${1:-} == --keep ]] && KEEP=1
[[ $# -gt KEEP ]] && { echo "usage: $0 [--keep]" >&2; exit 2; }

step() { printf '\n== %s\n' "$*"; }
saw() { printf '   %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || fail "run as root: debootstrap and buildah's chroot isolation need it"
for tool in buildah debootstrap node npm git curl tar; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install -y buildah debootstrap curl)"
done

WORK=$(mktemp -d /var/tmp/safe-lora-images.XXXXXX)
B=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
PIDS=()

cleanup() {
  local rc=$?
  # The processes this script started, and what they started (a `buildah run` leaves its command running).
  for pid in "${PIDS[@]}"; do kill $(descendants "$pid") "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $KEEP == 1 ]]; then
    printf '\nkept %s (buildah: %s)\n' "$WORK" "${B[*]}"
  else
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
    # A run that was killed can leave its /proc, /dev binds under the folder: unmount only those.
    findmnt -rn -o TARGET | grep -F "$WORK" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Node's child processes of a pid, depth-first (buildah run → the command it started).
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1"); do
    echo "$child"
    descendants "$child"
  done
}

# The pid of the node process a `buildah run` (pid $1) started, once it exists.
container_node_pid() {
  local pid
  for pid in $(descendants "$1"); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == node ]] && { echo "$pid"; return 0; }
  done
  return 1
}

# One field of an image's Docker config (Cmd, User, Healthcheck, …), as JSON.
image_config() {
  local inspected
  inspected=$("${B[@]}" inspect --type image "$1") || fail "buildah inspect $1"
  node -e 'console.log(JSON.stringify(JSON.parse(process.argv[1]).Docker.config[process.argv[2]] ?? null))' "$inspected" "$2"
}

# A JSON array of strings as lines, for mapfile.
json_lines() { node -e 'for (const x of JSON.parse(process.argv[1])) console.log(x)' "$1"; }

step "tools"
saw "$(buildah --version)"
saw "$(debootstrap --version)"
saw "host node $(node --version), npm $(npm --version), $(nproc) cores; work folder $WORK"

step "1. stand-in base image: debootstrap --variant=minbase bookworm + this machine's node"
start=$SECONDS
debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  { tail -20 "$WORK/debootstrap.log"; fail "debootstrap from $MIRROR"; }
rm -f "$WORK"/rootfs/var/cache/apt/archives/*.deb
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(npm root -g 2>/dev/null)/npm
node_headers=$(dirname "$(dirname "$node_bin")")/include/node
install -D -m 0755 "$node_bin" "$WORK/rootfs/usr/local/bin/node"
mkdir -p "$WORK/rootfs/usr/local/lib/node_modules" "$WORK/rootfs/usr/local/include"
cp -a "$npm_dir" "$WORK/rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$WORK/rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$WORK/rootfs/usr/local/bin/npx"
# node-gyp needs the headers when better-sqlite3 compiles itself; the real images' builds fetch them from
# nodejs.org (or take a prebuilt binary from GitHub), neither of which this machine reaches.
[[ -f $node_headers/node_api.h ]] || fail "no node headers at $node_headers (better-sqlite3 must compile here)"
cp -a "$node_headers" "$WORK/rootfs/usr/local/include/node"
# This machine's TLS connections to the registries are signed by a CA that only its own bundle holds (npm fails
# with SELF_SIGNED_CERT_IN_CHAIN without it): the stand-in trusts the same bundle. A real base image needs nothing.
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
rm -rf "$WORK/rootfs"
ctr=$("${B[@]}" from scratch)
"${B[@]}" add "$ctr" "$WORK/rootfs.tar" / >/dev/null
rm -f "$WORK/rootfs.tar"
"${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env npm_config_nodedir=/usr/local --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --cmd node "$ctr"
"${B[@]}" commit --quiet --format docker "$ctr" "$BASE" >/dev/null
"${B[@]}" rm "$ctr" >/dev/null
saw "$BASE: $("${B[@]}" run --isolation chroot "$("${B[@]}" from --pull=never "$BASE")" -- sh -c '. /etc/os-release; echo "$PRETTY_NAME, node $(node --version), npm $(npm --version)"' 2>&1) ($((SECONDS - start)) s)"
"${B[@]}" rm --all >/dev/null

step "2. build context: the committed tree (HEAD), with the working tree's Dockerfile and .dockerignore"
mkdir "$WORK/context"
git -C "$REPO" archive --format=tar HEAD | tar -x -C "$WORK/context"
cp "$REPO/Dockerfile" "$REPO/.dockerignore" "$WORK/context/"
changed=$(git -C "$REPO" status --porcelain -- Dockerfile .dockerignore)
saw "HEAD $(git -C "$REPO" rev-parse --short HEAD)$([[ -n $changed ]] && echo "; Dockerfile/.dockerignore have uncommitted changes, those are built")"

build_target() {
  local target=$1 start=$SECONDS
  if ! "${B[@]}" bud --isolation chroot --format docker --layers --pull=never \
    --build-arg NODE_IMAGE="$BASE" --target "$target" -t "localhost/safe-lora:$target" \
    -f "$WORK/context/Dockerfile" "$WORK/context" >"$WORK/build-$target.log" 2>&1; then
    tail -30 "$WORK/build-$target.log"
    fail "buildah bud --target $target (log above)"
  fi
  grep -E 'STEP [0-9]+/[0-9]+: (FROM|RUN npm|RUN ONNX)' "$WORK/build-$target.log" | sed 's/^/   /'
  local size
  size=$("${B[@]}" images --format '{{.Size}}' "localhost/safe-lora:$target" 2>/dev/null || echo '?')
  saw "built localhost/safe-lora:$target in $((SECONDS - start)) s, ${size}"
}

step "3. buildah bud --target space (the Hugging Face Docker Space)"
build_target space
step "4. buildah bud --target worker (CPU worker)"
build_target worker

step "5. gpu-worker: not built here"
saw "it needs the CUDA base image ($(sed -n 's/^ARG CUDA_IMAGE=//p' "$REPO/Dockerfile")) from a registry, and"
saw "onnxruntime-node's install script fetches the CUDA 12 provider libraries from api.nuget.org:"
saw "api.nuget.org from here: HTTP $(curl -s -o /dev/null -m 8 -w '%{http_code}' https://api.nuget.org/v3/index.json || true) (000 = unreachable)"
saw "its stage is linted by test/images/dockerfile.test.ts (npx vitest run test/images)"

step "6. image configs"
for target in space worker; do
  img=localhost/safe-lora:$target
  user=$(image_config "$img" User)
  saw "$target: User=$user Cmd=$(image_config "$img" Cmd) ExposedPorts=$(image_config "$img" ExposedPorts) Healthcheck=$(image_config "$img" Healthcheck | cut -c1-90)…"
  saw "$target: Env=$(image_config "$img" Env)"
  [[ $user == '"1000:1000"' ]] || fail "$target: runs as $user, not 1000:1000"
  mnt_ctr=$("${B[@]}" from --pull=never "$img")
  mnt=$("${B[@]}" mount "$mnt_ctr")
  for absent in app/test app/src app/scripts app/bench app/.git; do
    [[ ! -e $mnt/$absent ]] || fail "$target contains /$absent"
  done
  saw "$target: /app holds $(cd "$mnt/app" && echo *); no test/, src/, scripts/, bench/ (/data owned by uid $(stat -c %u "$mnt/data"))"
  "${B[@]}" umount "$mnt_ctr" >/dev/null
  "${B[@]}" rm "$mnt_ctr" >/dev/null
done
space_config=$(image_config localhost/safe-lora:space Env)
[[ $space_config == *'"DATA_DIR=/data"'* && $space_config == *'"PORT=7860"'* ]] || fail "space: DATA_DIR=/data and PORT=7860 not in its Env"
[[ $(image_config localhost/safe-lora:space ExposedPorts) == *7860/tcp* ]] || fail "space: does not EXPOSE 7860"
[[ $(image_config localhost/safe-lora:worker Healthcheck) == *NONE* ]] || fail "worker: expected HEALTHCHECK NONE"

step "7. a stand-in Hub on the host (serve and worker check HF_TOKEN with whoami-v2 at start)"
if curl -s -o /dev/null -m 2 "http://127.0.0.1:$SPACE_PORT/"; then fail "something already listens on 127.0.0.1:$SPACE_PORT"; fi
(cd "$REPO" && exec node --import tsx scripts/images/stand-in-hub.ts) >"$WORK/hub.json" 2>"$WORK/hub.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s $WORK/hub.json ]] && break; sleep 0.2; done
[[ -s $WORK/hub.json ]] || { cat "$WORK/hub.log"; fail "the stand-in Hub did not start"; }
HUB_URL=$(node -e 'console.log(JSON.parse(process.argv[1]).url)' "$(cat "$WORK/hub.json")")
HUB_TOKEN=$(node -e 'console.log(JSON.parse(process.argv[1]).token)' "$(cat "$WORK/hub.json")")
WEBHOOK_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
saw "stand-in Hub at $HUB_URL with the account safe-lora-bot"

step "8. run the space image's CMD as the image's USER, HF_WEBHOOK_SECRET set, host folder on /data"
mkdir "$WORK/space-data" && chown 1000:1000 "$WORK/space-data"
space_ctr=$("${B[@]}" from --pull=never localhost/safe-lora:space)
mapfile -t space_cmd < <(json_lines "$(image_config localhost/safe-lora:space Cmd)")
"${B[@]}" run --isolation chroot --volume "$WORK/space-data:/data" --env "HF_TOKEN=$HUB_TOKEN" \
  --env "HF_WEBHOOK_SECRET=$WEBHOOK_SECRET" --env "HF_ENDPOINT=$HUB_URL" "$space_ctr" -- "${space_cmd[@]}" \
  >"$WORK/space.log" 2>&1 &
space_run=$!
PIDS+=("$space_run")
saw "started: ${space_cmd[*]}"
code=000
for _ in $(seq 1 120); do
  code=$(curl -s -o "$WORK/healthz.json" -w '%{http_code}' -m 2 "http://127.0.0.1:$SPACE_PORT/healthz" || true)
  [[ $code == 200 ]] && break
  kill -0 "$space_run" 2>/dev/null || break
  sleep 0.5
done
[[ $code == 200 ]] || { cat "$WORK/space.log"; fail "GET http://127.0.0.1:$SPACE_PORT/healthz answered $code"; }
saw "GET http://127.0.0.1:$SPACE_PORT/healthz → $code $(cat "$WORK/healthz.json")"
space_pid=$(container_node_pid "$space_run") || fail "no node process under buildah run"
saw "listening process: pid $space_pid, $(grep -E '^(Uid|Gid):' "/proc/$space_pid/status" | tr -s '\t' ' ' | paste -sd';'), root $(readlink "/proc/$space_pid/root")"
[[ $(awk '/^Uid:/ { print $2 $3 $4 $5 }' "/proc/$space_pid/status") == 1000100010001000 ]] || fail "serve does not run as uid 1000"
mapfile -t health_cmd < <(json_lines "$(image_config localhost/safe-lora:space Healthcheck |
  node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>console.log(JSON.stringify(JSON.parse(s).Test.slice(1))))')")
if "${B[@]}" run --isolation chroot "$space_ctr" -- "${health_cmd[@]}"; then
  saw "the image's HEALTHCHECK command, run inside the image: exit 0"
else
  fail "the image's HEALTHCHECK command failed"
fi
saw "/data after start: $(cd "$WORK/space-data" && stat -c '%n (uid %u)' * | paste -sd' ')"
kill -TERM "$space_pid"
space_rc=0
wait "$space_run" || space_rc=$?
sed 's/^/   log: /' "$WORK/space.log" | cut -c1-220
[[ $space_rc == 0 ]] || fail "serve exited $space_rc after SIGTERM"
saw "SIGTERM → serve exited 0"
if grep -qF -e "$HUB_TOKEN" -e "$WEBHOOK_SECRET" "$WORK/space.log"; then fail "the token or the webhook secret is in serve's log"; fi
saw "neither HF_TOKEN nor HF_WEBHOOK_SECRET appears in its log"

step "9. run the worker image's CMD"
worker_ctr=$("${B[@]}" from --pull=never localhost/safe-lora:worker)
mapfile -t worker_cmd < <(json_lines "$(image_config localhost/safe-lora:worker Cmd)")
worker_rc=0
"${B[@]}" run --isolation chroot "$worker_ctr" -- "${worker_cmd[@]}" >"$WORK/worker-no-token.log" 2>&1 || worker_rc=$?
saw "without HF_TOKEN: exit $worker_rc, printed: $(cat "$WORK/worker-no-token.log")"
[[ $worker_rc == 2 ]] || fail "the worker without HF_TOKEN should exit 2 (usage) with a message"
mkdir "$WORK/worker-data" && chown 1000:1000 "$WORK/worker-data"
"${B[@]}" run --isolation chroot --volume "$WORK/worker-data:/data" --env "HF_TOKEN=$HUB_TOKEN" \
  --env "HF_ENDPOINT=$HUB_URL" "$worker_ctr" -- "${worker_cmd[@]}" >"$WORK/worker.log" 2>&1 &
worker_run=$!
PIDS+=("$worker_run")
for _ in $(seq 1 60); do grep -q started "$WORK/worker.log" 2>/dev/null && break; kill -0 "$worker_run" 2>/dev/null || break; sleep 0.5; done
worker_pid=$(container_node_pid "$worker_run") || { cat "$WORK/worker.log"; fail "the worker is not running"; }
sleep 3
kill -0 "$worker_pid" 2>/dev/null || { cat "$WORK/worker.log"; fail "the worker stopped by itself"; }
saw "with HF_TOKEN and no QUEUE_URL (the embedded queue in its own /data): running after 3 s, pid $worker_pid, $(grep -E '^Uid:' "/proc/$worker_pid/status" | tr -s '\t' ' ')"
[[ $(awk '/^Uid:/ { print $2 }' "/proc/$worker_pid/status") == 1000 ]] || fail "the worker does not run as uid 1000"
kill -TERM "$worker_pid"
worker_rc=0
wait "$worker_run" || worker_rc=$?
sed 's/^/   log: /' "$WORK/worker.log" | cut -c1-220
[[ $worker_rc == 0 ]] || fail "the worker exited $worker_rc after SIGTERM"
saw "SIGTERM → worker exited 0; /data: $(cd "$WORK/worker-data" && ls | paste -sd' ')"

step "PASSED: space and worker built with buildah against $BASE and run as uid 1000; gpu-worker not built (step 5)"
