#!/usr/bin/env bash
# graphyard's container entrypoint on AWS Lambda (written by `graphyard deploy lambda render`).
#
# 1. Secrets. Every VAR=/ssm/parameter pair in SSM_SECRETS is read from SSM Parameter Store
#    (one GetParameters call, decrypted) and exported, so no key sits in the function's
#    configuration and a rotated key is picked up by the next cold start.
# 2. Tailscale, only when a tier needs the tailnet. Lambda has no /dev/net/tun, so tailscaled
#    runs in userspace mode with its state and socket in /tmp (the only writable place) and
#    a local SOCKS5 and HTTP proxy. Userspace mode gives other processes NO route to the
#    tailnet: a tier reaches it only through that proxy. The tiers in TS_PROXY_TIERS
#    (default: every ollama: tier) get GRAPHYARD_<TIER>__PROXY; DynamoDB, Anthropic and
#    every other tier go direct. `tailscale up` has a bounded timeout.
# 3. exec `graphyard serve` on $PORT, where the Lambda Web Adapter sends requests.
#
# Every failure logs one line "entrypoint: error: ..." and exits non-zero:
#   2 configuration, 3 secrets, 4 tailscaled, 5 tailscale up.
set -euo pipefail

PORT="${PORT:-8080}"
TS_DIR="${TS_DIR:-/tmp/tailscale}"
TS_SOCKS5="${TS_SOCKS5:-localhost:1055}"
TS_HTTP_PROXY="${TS_HTTP_PROXY:-localhost:1056}"
TS_UP_TIMEOUT="${TS_UP_TIMEOUT:-20s}"
TS_HOSTNAME="${TS_HOSTNAME:-@@TS_HOSTNAME@@}"
export HOME="${HOME:-/tmp}"

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() {
  local code="$1"
  shift
  printf 'entrypoint: error: %s\n' "$*" >&2
  exit "$code"
}

load_secrets() {
  [ -n "${SSM_SECRETS:-}" ] || return 0
  local exports item names=""
  # Prints one `export VAR=<quoted value>` line per secret; values never reach the log.
  if ! exports="$(python3 - "$SSM_SECRETS" <<'PY'
import shlex
import sys

import boto3

pairs = [item.split("=", 1) for item in sys.argv[1].split()]
bad = [p[0] for p in pairs if len(p) != 2 or not p[0] or not p[1]]
if bad:
    sys.exit(f"SSM_SECRETS must be 'VAR=/parameter/name ...'; bad item(s): {bad}")
names = sorted({name for _, name in pairs})
answer = boto3.client("ssm").get_parameters(Names=names, WithDecryption=True)
if answer.get("InvalidParameters"):
    sys.exit(f"no such SSM parameter(s): {answer['InvalidParameters']}")
values = {p["Name"]: p["Value"] for p in answer["Parameters"]}
for var, name in pairs:
    print(f"export {var}={shlex.quote(values[name])}")
PY
  )"; then
    die 3 "could not read SSM_SECRETS ($SSM_SECRETS) from SSM Parameter Store; check the parameter names and the function role's ssm:GetParameters permission"
  fi
  eval "$exports"
  for item in $SSM_SECRETS; do
    names="$names ${item%%=*}"
  done
  log "read$names from SSM Parameter Store"
}

# Tiers that reach the tailnet: TS_PROXY_TIERS if set (may be empty), else the ollama: ones.
proxy_tiers() {
  if [ -n "${TS_PROXY_TIERS+set}" ]; then
    printf '%s\n' "${TS_PROXY_TIERS,,}"
    return
  fi
  local tier var found=""
  for tier in cheap mid strong; do
    var="GRAPHYARD_${tier^^}__MODEL"
    case "${!var:-}" in
      ollama:*) found="$found $tier" ;;
    esac
  done
  printf '%s\n' "${found# }"
}

start_tailscale() {
  local tiers="$1" socket="$TS_DIR/tailscaled.sock" pid _
  command -v tailscaled >/dev/null 2>&1 || die 4 "tailscaled is not on PATH; the image must copy it from the tailscale image"
  command -v tailscale >/dev/null 2>&1 || die 4 "tailscale is not on PATH; the image must copy it from the tailscale image"
  [ -n "${TS_AUTHKEY:-}" ] || die 2 "tier(s) '$tiers' reach Ollama over Tailscale but TS_AUTHKEY is empty; put an ephemeral auth key in SSM Parameter Store and name it in SSM_SECRETS (docs/deploy-lambda.md)"
  mkdir -p "$TS_DIR"
  tailscaled --tun=userspace-networking \
    --state="$TS_DIR/tailscaled.state" \
    --socket="$socket" \
    --socks5-server="$TS_SOCKS5" \
    --outbound-http-proxy-listen="$TS_HTTP_PROXY" \
    >"$TS_DIR/tailscaled.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    [ -S "$socket" ] && break
    kill -0 "$pid" 2>/dev/null || die 4 "tailscaled exited at start: $(tail -n 5 "$TS_DIR/tailscaled.log" | tr '\n' ' ')"
    sleep 0.05
  done
  [ -S "$socket" ] || die 4 "tailscaled did not open $socket within 5 s"
  if ! tailscale --socket="$socket" up \
    --authkey="$TS_AUTHKEY" \
    --hostname="$TS_HOSTNAME" \
    --timeout="$TS_UP_TIMEOUT" >"$TS_DIR/up.log" 2>&1; then
    die 5 "tailscale up failed (timeout $TS_UP_TIMEOUT): $(tail -n 3 "$TS_DIR/up.log" | tr '\n' ' ')"
  fi
  log "joined the tailnet as $TS_HOSTNAME (SOCKS5 $TS_SOCKS5, HTTP proxy $TS_HTTP_PROXY)"
}

point_tiers_at_proxy() {
  local tier var
  for tier in $1; do
    case "$tier" in
      cheap | mid | strong) ;;
      *) die 2 "TS_PROXY_TIERS names '$tier'; use cheap, mid and/or strong" ;;
    esac
    var="GRAPHYARD_${tier^^}__PROXY"
    if [ -z "${!var:-}" ]; then
      export "$var=socks5://$TS_SOCKS5"
    fi
    log "tier $tier reaches the tailnet through ${!var}; the other tiers go direct"
  done
}

main() {
  load_secrets
  if [ -z "${GRAPHYARD_API_KEYS:-}" ] && [ -z "${GRAPHYARD_AUTH:-}" ] && [ "${ALLOW_NO_AUTH:-0}" != 1 ]; then
    die 2 "no GRAPHYARD_API_KEYS: a public Function URL would let anyone read every thread. Store {\"<key>\": \"<user>\"} in SSM and name it in SSM_SECRETS, or set ALLOW_NO_AUTH=1 when the URL uses AuthType AWS_IAM"
  fi
  local tiers
  tiers="$(proxy_tiers)"
  if [ -n "$tiers" ]; then
    start_tailscale "$tiers"
    point_tiers_at_proxy "$tiers"
  else
    log "no tier uses the tailnet; Tailscale not started"
  fi
  log "starting graphyard on port $PORT"
  exec graphyard serve --port "$PORT"
}

main "$@"
