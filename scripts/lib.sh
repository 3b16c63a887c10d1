# Shared set-up for scripts/demo and scripts/test: each step reuses what is already there.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${EBBFLOW_VENV:-$ROOT/.venv}
RUNDIR=$ROOT/.ebbflow              # our pid files and logs (git-ignored)
IMAGE=${EBBFLOW_TEST_IMAGE:-ebbflow/busybox:latest}
STARTED_ENGINE_PID=""

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root; run this script with sudo"; }

apt_install() {  # install the Debian packages that are not installed yet
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    need_root "installing ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    # Another apt or dpkg may hold the lock (unattended upgrades, a parallel job): wait for
    # it, up to 10 minutes, rather than fail.
    local wait=(-o DPkg::Lock::Timeout=600) tries=0
    until apt-get "${wait[@]}" update -qq; do  # the lists' lock is not dpkg's: retried
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || die "apt-get update kept failing"
        say "apt-get update failed (another apt holds its lock?): again in 10 s"
        sleep 10
    done
    # Servers we install are oracles the tests start by hand: never as system services.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        guard=/usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y -qq "${missing[@]}" >/dev/null
    [ -z "$guard" ] || rm -f "$guard"
}

ensure_python() {
    if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        apt_install python3 python3-venv
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "ebbflow needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"
    fi
}

pip_quiet() {  # pip, minus the warnings this machine's pip config prints on every call
    "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

ensure_venv() {  # $VENV with ebbflow installed (editable, strict: mypy sees every part)
    [ -x "$VENV/bin/python" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
    local stamp
    stamp="$VENV/.deps-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        say "installing dependencies into $VENV"
        pip_quiet install -q --disable-pip-version-check -e "$ROOT[test]" \
            --config-settings editable_mode=strict
        rm -f "$VENV"/.deps-*; touch "$stamp"
    else  # refresh the link tree only, so files added since are importable
        pip_quiet install -q --disable-pip-version-check --no-deps -e "$ROOT" \
            --config-settings editable_mode=strict
    fi
}

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

ensure_engine() {  # reuse an engine that answers; else start Debian's dockerd
    command -v docker >/dev/null || apt_install docker.io
    if engine_answers; then
        say "reusing the Docker engine at ${DOCKER_HOST:-the default socket}"
        return 0
    fi
    [ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer; unset it to start a local engine"
    command -v dockerd >/dev/null || apt_install docker.io
    need_root "starting dockerd"
    mkdir -p "$RUNDIR"
    say "starting dockerd (log: $RUNDIR/dockerd.log)"
    # vfs works everywhere, overlay filesystems included; set EBBFLOW_DOCKERD_ARGS to change it.
    # shellcheck disable=SC2086
    dockerd ${EBBFLOW_DOCKERD_ARGS:---storage-driver=vfs} --pidfile "$RUNDIR/dockerd.pid" \
        >"$RUNDIR/dockerd.log" 2>&1 &
    STARTED_ENGINE_PID=$!
    local i
    for i in $(seq 1 120); do
        engine_answers && return 0
        kill -0 "$STARTED_ENGINE_PID" 2>/dev/null || break
        sleep 0.5
    done
    tail -20 "$RUNDIR/dockerd.log" >&2
    die "dockerd did not come up (log: $RUNDIR/dockerd.log)"
}

stop_engine_if_started() {  # the engine we started is ours to stop (EBBFLOW_KEEP_ENGINE=1 keeps it)
    if [ -n "$STARTED_ENGINE_PID" ] && [ -z "${EBBFLOW_KEEP_ENGINE:-}" ]; then
        say "stopping the dockerd we started (pid $STARTED_ENGINE_PID)"
        kill "$STARTED_ENGINE_PID" 2>/dev/null || true
        wait "$STARTED_ENGINE_PID" 2>/dev/null || true
    fi
}

ensure_image() {
    docker image inspect "$IMAGE" >/dev/null 2>&1 || "$ROOT/scripts/build-image" "$IMAGE"
}
