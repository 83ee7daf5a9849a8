#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12, as a new user would run them.
#
# Builds a Debian 12 (bookworm) minbase root with debootstrap in a folder of the
# project's (.scratch/fresh-machine, or FRESH_CHECK_DIR), gives it the host's CA
# certificates, package sources and name servers, installs only `git make
# ca-certificates python3`, clones the project's committed HEAD into /root/scimflow, and
# runs inside it, as root, through chroot with /proc, /sys and /dev mounted:
#
#   make test
#   make demo ARGS=--no-wait
#   make demo ARGS="--no-wait --stream-seconds 0"   (the stack still up: the README says
#                                                    the resync finds nothing to change)
#   make stop
#
# and prints each step's outcome and time. Every step's output is in the work folder's
# logs/. Mounts are undone and the processes started inside are stopped on exit, also
# after a failure or Ctrl-C; the root is removed after a pass (kept after a failure, or
# always with --keep). Not part of `make test` or CI: it takes minutes (7 to 8 here).
#
# Usage: scripts/fresh-machine-check.sh [--keep]      (as root, or through sudo)
# Knobs: FRESH_CHECK_DIR (work folder), FRESH_CHECK_MIRROR (Debian mirror; default: the
# host's first Debian source).
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)

keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=FRESH_CHECK_DIR,FRESH_CHECK_MIRROR "$0" "$@"
fi

work=$(realpath -m "${FRESH_CHECK_DIR:-$project/.scratch/fresh-machine}")
root=$work/root
logs=$work/logs
origin=/mnt/scimflow-origin
SUITE=bookworm

# -- steps, their outcome and time -------------------------------------------------------
names=()
outcomes=()
times=()
failed=0

stamp() { date -u +%H:%M:%S; }

# step NAME COMMAND...: run it with its output in logs/NAME.log; record outcome and time
step() {
  local name=$1
  shift
  if [ "$failed" -ne 0 ]; then
    names+=("$name"); outcomes+=("skipped"); times+=("-")
    return 0
  fi
  echo "[$(stamp)] $name ..."
  local t0=$SECONDS status=0
  # in the background and waited for: `set -e` holds inside the step (it would not
  # inside a command tested with ||)
  ("$@") >"$logs/$name.log" 2>&1 &
  wait $! || status=$?
  local took=$((SECONDS - t0))
  names+=("$name"); times+=("$took")
  if [ "$status" -eq 0 ]; then
    outcomes+=("ok")
    echo "[$(stamp)] $name: ok in ${took} s"
  else
    outcomes+=("FAILED ($status)")
    failed=1
    echo "[$(stamp)] $name: FAILED (exit $status) after ${took} s; last lines of $logs/$name.log:"
    tail -n 40 "$logs/$name.log" | sed 's/^/    /'
  fi
}

summary() {
  echo
  echo "fresh-machine check ($SUITE minbase, root in $root):"
  printf '  %-44s %-12s %s\n' step outcome seconds
  local i
  for i in "${!names[@]}"; do
    printf '  %-44s %-12s %s\n' "${names[$i]}" "${outcomes[$i]}" "${times[$i]}"
  done
  printf '  %-44s %-12s %s\n' total "$([ "$failed" -eq 0 ] && echo passed || echo FAILED)" \
    "$SECONDS"
  echo "logs: $logs"
}

# -- inside the root ---------------------------------------------------------------------
# The certificate variables are this network's (its egress CA), not the project's: a
# machine here has them too. Nothing else of the host's environment goes in.
inside() {
  local env=(HOME=/root LANG=C.UTF-8 TERM=dumb
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
  local var
  for var in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE \
    GIT_SSL_CAINFO; do
    [ -n "${!var:-}" ] && env+=("$var=${!var}")
  done
  chroot "$root" /usr/bin/env -i "${env[@]}" bash -c "$1"
}

mounted() { grep -q " $1 " /proc/self/mounts; }

mount_all() {
  mkdir -p "$root/proc" "$root/sys" "$root/dev"
  mounted "$root/proc" || mount -t proc proc "$root/proc"
  mounted "$root/sys" || mount -t sysfs sysfs "$root/sys"
  if ! mounted "$root/dev"; then
    mount --rbind /dev "$root/dev"
    mount --make-rslave "$root/dev"
  fi
}

# processes whose root is the chroot: started by this check (the stack, tests)
inside_pids() {
  local link pid
  for link in /proc/[0-9]*/root; do
    pid=${link#/proc/}
    pid=${pid%/root}
    [ "$(readlink "$link" 2>/dev/null)" = "$root" ] && echo "$pid"
  done
  return 0
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -d "$root/root/scimflow/.venv" ] && mounted "$root/proc"; then
    inside "cd /root/scimflow && $(port_env) .venv/bin/scimflow services down" \
      >>"$logs/cleanup.log" 2>&1 || true
  fi
  local pids
  pids=$(inside_pids)
  if [ -n "$pids" ]; then
    echo "stopping processes still running inside: $(echo $pids)"
    kill $pids 2>/dev/null || true
    sleep 5
    pids=$(inside_pids)
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  fi
  mounted "$root$origin" && umount "$root$origin"
  for m in dev sys proc; do
    if mounted "$root/$m"; then
      umount -R "$root/$m" 2>/dev/null || umount -R -l "$root/$m"
    fi
  done
  summary
  if [ "$failed" -eq 0 ] && [ "$keep" -eq 0 ] && [ "$status" -eq 0 ]; then
    rm -rf --one-file-system "$root"
    echo "root removed (pass --keep to keep it)"
  else
    echo "root kept: $root"
  fi
  [ "$failed" -eq 0 ] && exit "$status" || exit 1
}

# -- the steps -----------------------------------------------------------------------------
host_tools() {
  command -v debootstrap >/dev/null && return 0
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}

mirror() {
  if [ -n "${FRESH_CHECK_MIRROR:-}" ]; then
    echo "$FRESH_CHECK_MIRROR"
    return
  fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' \
    | grep -v security | head -n 1 || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list \
    2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

build_root() {
  # what an earlier check that was killed may have left mounted
  local m
  for m in $(awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -R -l "$m" || true
  done
  rm -rf --one-file-system "$root"
  debootstrap --variant=minbase "$SUITE" "$root" "$(mirror)"
}

configure_root() {
  # the host's CA certificates (its own and this network's): ca-certificates, installed
  # next, takes those of /usr/local/share/ca-certificates into the system's bundle
  mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # the host's package sources and how apt fetches them (Acquire:: settings)
  rm -f "$root/etc/apt/sources.list"
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cp "$f" "$root/etc/apt/sources.list.d/"
  done
  for f in /etc/apt/apt.conf.d/*; do
    grep -q '^Acquire::' "$f" 2>/dev/null && cp "$f" "$root/etc/apt/apt.conf.d/"
  done
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/hosts "$root/etc/hosts"
  mount_all
}

install_packages() {
  inside "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends git make ca-certificates python3"
  inside "dpkg -l | awk '/^ii/ {print \$2}' | wc -l | sed 's/^/packages installed: /'"
}

clone_project() {
  mkdir -p "$root$origin"
  mount --bind -o ro "$project" "$root$origin"
  # through git's own transport, as from a server: the committed HEAD, nothing else
  inside "git -c safe.directory='*' clone -q file://$origin /root/scimflow && \
    git -C /root/scimflow log -1 --format='cloned %h %s'"
  umount "$root$origin"
}

# the demo's fixed ports: if the host already uses one (another stack), the demo inside
# gets free ones through the documented variables, and says so (the tests choose free
# ports themselves)
demo_ports=()
port_env() {
  local var
  for var in "${demo_ports[@]}"; do printf '%s=%s ' "$var" "${!var}"; done
}
choose_ports() {
  local var port
  for pair in SCIMFLOW_KAFKA_PORT:9092 SCIMFLOW_KAFKA_CONTROLLER_PORT:9093 \
    SCIMFLOW_POSTGRES_PORT:15432 SCIMFLOW_OKTA_PORT:8090 SCIMFLOW_RECEIVER_PORT:8089 \
    SCIMFLOW_SCIM_A_PORT:18081 SCIMFLOW_SCIM_B_PORT:18082 SCIMFLOW_AIRFLOW_PORT:8080; do
    var=${pair%%:*}
    port=${pair##*:}
    # bound as the servers bind (SO_REUSEADDR): only a listener makes the port busy, not
    # the TIME_WAIT connections a stack that just stopped leaves behind
    if python3 -c "import socket; s=socket.socket(); \
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $port))" \
      2>/dev/null; then
      continue
    fi
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    printf -v "$var" '%s' "$port"
    demo_ports+=("$var")
    echo "port ${pair##*:} is in use on this machine: the demo inside uses $var=$port"
  done
}

make_test() { inside "cd /root/scimflow && make test"; }
make_demo() { inside "cd /root/scimflow && $(port_env) make demo ARGS=--no-wait"; }
make_demo_again() {
  inside "cd /root/scimflow && $(port_env) make demo ARGS='--no-wait --stream-seconds 0'"
  # this step's own log, written so far: the README's claim about a second demo
  grep -q "found nothing to change" "$logs/second-make-demo.log" || {
    echo "the README says a second make demo on a running stack finds nothing to change;"
    echo "this one's resync wrote: see above"
    return 1
  }
}
make_stop() { inside "cd /root/scimflow && $(port_env) make stop"; }

mkdir -p "$logs"
rm -f "$logs"/*.log
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "fresh-machine check: Debian 12 minbase in $root (logs in $logs)"
step host-debootstrap host_tools
step debootstrap-minbase build_root
step configure-root configure_root
step install-git-make-ca-certificates-python3 install_packages
step clone-project clone_project
choose_ports
step make-test make_test
step make-demo make_demo
step second-make-demo make_demo_again
step make-stop make_stop
