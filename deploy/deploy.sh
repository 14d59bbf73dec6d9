#!/usr/bin/env bash
# Upgrade, roll back, inspect, back up and restore the Compose deployment in this directory.
#
#   deploy.sh deploy TAG [--dry-run]    migrate with lms-streaming:TAG in a one-off container, then
#                                       replace the app services one at a time, each gated on
#                                       readiness; records the tag it replaces as the previous one
#   deploy.sh rollback [--dry-run]      back to the previous tag the same way, without migrating
#   deploy.sh status [--dry-run]        current and previous tag, each service's state and readiness
#   deploy.sh backup [DIR]              PostgreSQL (pg_dump -Fc) and the media volume (tar) into
#                                       DIR/lms-backup-<UTC time>/ with manifest.txt and SHA256SUMS;
#                                       keeps the newest BACKUP_KEEP backups in DIR
#   deploy.sh restore DIR [--force]     a backup into an EMPTY database and media directory;
#                                       --force first drops the database's public schema and
#                                       extracts over what the media directory holds
#
# --dry-run prints the commands, in order, and changes nothing.
#
# Environment:
#   DEPLOY_MODE=compose     compose (default): `docker compose -f compose.yaml -f compose.prod.yaml`
#                           here, the image lms-streaming:$LMS_IMAGE_TAG. local: backup and restore
#                           only, straight against LMS_DATABASE_URL and LMS_MEDIA_DIR with the
#                           pg_dump/pg_restore/psql in PG_BIN (or on PATH), whose major version
#                           must be the server's or newer.
#   DEPLOY_STATE_DIR        where .deploy-state (current and previous tag) lives; default: here
#   DEPLOY_NODES, DEPLOY_WORKERS
#                           the app services, space-separated; default: from `docker compose
#                           config`, every lms-streaming service (`serve`: node, `worker`: worker)
#                           but the one-shot `migrate`
#   DEPLOY_READY_TIMEOUT=120
#                           seconds a replaced service has to become ready: a node answers 200 on
#                           /api/v1/monitoring/health, a worker says it is transcoding
#   BACKUP_DIR=/var/backups/lms   BACKUP_KEEP=7
#   POSTGRES_USER=lms  POSTGRES_DB=lms  (compose mode: the postgres service's, as in compose.yaml)
set -euo pipefail

DEPLOY_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
MODE=${DEPLOY_MODE:-compose}
STATE_FILE=${DEPLOY_STATE_DIR:-$DEPLOY_DIR}/.deploy-state
READY_TIMEOUT=${DEPLOY_READY_TIMEOUT:-120}
PG_USER=${POSTGRES_USER:-lms}
PG_DB=${POSTGRES_DB:-lms}
IMAGE=lms-streaming
MEDIA_IN_IMAGE=/var/lib/lms/media
HEALTH_PATH=/api/v1/monitoring/health
# The image has python but no curl; urlopen raises (exit 1) on a refused connection and on a 503.
READY_PROBE="import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s$HEALTH_PATH' % os.environ.get('LMS_PORT', '8000'), timeout=4)"
WORKER_BANNER="transcoding in"
COMPOSE=(docker compose -f "$DEPLOY_DIR/compose.yaml" -f "$DEPLOY_DIR/compose.prod.yaml")
BACKUP_GLOB='lms-backup-????????T??????.???Z'
DRY_RUN=false
NODES=()
WORKERS=()

say() { printf '%s\n' "$*"; }
fail() {
    printf 'deploy.sh: %s\n' "$*" >&2
    exit 1
}

# Run a command, or with --dry-run print it (shell-quoted) instead.
run() {
    if $DRY_RUN; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# --- state: the tag running now and the one it replaced ------------------------------------

state_get() {
    local key=$1 line
    [[ -f $STATE_FILE ]] || return 0
    while IFS= read -r line; do
        if [[ $line == "$key="* ]]; then
            printf '%s' "${line#*=}"
            return 0
        fi
    done <"$STATE_FILE"
}

state_put() {
    local current=$1 previous=$2
    if $DRY_RUN; then
        say "+ record current=$current previous=${previous:-none} in $STATE_FILE"
        return
    fi
    mkdir -p -- "$(dirname -- "$STATE_FILE")"
    # Written aside and renamed, so an interrupted write never leaves half a state file.
    printf 'current=%s\nprevious=%s\n' "$current" "$previous" >"$STATE_FILE.tmp"
    mv -- "$STATE_FILE.tmp" "$STATE_FILE"
}

valid_tag() {
    [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]
}

# --- the app services -----------------------------------------------------------------------

find_services() {
    if [[ -n ${DEPLOY_NODES+set} || -n ${DEPLOY_WORKERS+set} ]]; then
        read -r -a NODES <<<"${DEPLOY_NODES:-}"
        read -r -a WORKERS <<<"${DEPLOY_WORKERS:-}"
    else
        local config roles role name
        config=$("${COMPOSE[@]}" config --format json) ||
            fail "docker compose config failed (or set DEPLOY_NODES and DEPLOY_WORKERS)"
        # The image's entrypoint is `lms`: the command says what a service is (migrate is neither).
        roles=$(python3 -c '
import json, sys
for name, service in sorted(json.load(sys.stdin)["services"].items()):
    if str(service.get("image", "")).startswith("lms-streaming:"):
        command = (service.get("command") or ["serve"])[0]
        if command in ("serve", "worker"):
            print("node" if command == "serve" else "worker", name)
' <<<"$config")
        while read -r role name; do
            case $role in
                node) NODES+=("$name") ;;
                worker) WORKERS+=("$name") ;;
            esac
        done <<<"$roles"
    fi
    ((${#NODES[@]} > 0)) || fail "no node service found (set DEPLOY_NODES, e.g. \"lms1 lms2\")"
}

node_ready() {
    "${COMPOSE[@]}" exec -T "$1" python -c "$READY_PROBE" >/dev/null 2>&1
}

# Output is read whole, not piped into `grep -q`: grep leaving early would fail the pipeline.
worker_ready() {
    local running said
    running=$("${COMPOSE[@]}" ps --status running --services 2>/dev/null) || return 1
    [[ $'\n'$running$'\n' == *$'\n'"$1"$'\n'* ]] || return 1
    said=$("${COMPOSE[@]}" logs --no-log-prefix "$1" 2>/dev/null) || return 1
    [[ $said == *"$WORKER_BANNER"* ]]
}

# Wait until `$2 $1` succeeds, polling every 2 s for READY_TIMEOUT seconds.
wait_ready() {
    local service=$1 check=$2 what=$3
    if $DRY_RUN; then
        say "+ wait until $service is ready ($what, within ${READY_TIMEOUT} s)"
        return 0
    fi
    local deadline=$((SECONDS + READY_TIMEOUT))
    until "$check" "$service"; do
        ((SECONDS < deadline)) || return 1
        sleep 2
    done
}

# Replace each node, then each worker, with lms-streaming:$1, one at a time: the others keep
# serving, and the first one that does not become ready stops the switch.
switch_to() {
    local tag=$1 service
    local -a compose=(env "LMS_IMAGE_TAG=$tag" "${COMPOSE[@]}")
    for service in "${NODES[@]}"; do
        run "${compose[@]}" up -d --no-deps "$service"
        wait_ready "$service" node_ready "GET $HEALTH_PATH answers 200" || not_ready "$service" "$tag"
        $DRY_RUN || say "$service runs $IMAGE:$tag and is ready"
    done
    for service in "${WORKERS[@]}"; do
        # A worker may run as several replicas (`--scale worker=N`); `up` alone would go back to one.
        local replicas
        replicas=$("${COMPOSE[@]}" ps -q "$service" 2>/dev/null | wc -l) || replicas=0
        if ((replicas > 1)); then
            run "${compose[@]}" up -d --no-deps --scale "$service=$replicas" "$service"
        else
            run "${compose[@]}" up -d --no-deps "$service"
        fi
        wait_ready "$service" worker_ready "running, and it logged \"$WORKER_BANNER\"" ||
            not_ready "$service" "$tag"
        $DRY_RUN || say "$service runs $IMAGE:$tag and is ready"
    done
}

not_ready() {
    local service=$1 tag=$2
    "${COMPOSE[@]}" logs --tail 40 "$service" >&2 || true
    fail "$service did not become ready on $IMAGE:$tag within ${READY_TIMEOUT} s; the switch stopped" \
        "there (services before it run $tag, those after it the old image). Fix and deploy again," \
        "or go back with: $0 rollback"
}

ensure_image() {
    local tag=$1
    if $DRY_RUN; then
        say "+ use $IMAGE:$tag (docker image inspect, else docker compose pull)"
        return
    fi
    docker image inspect "$IMAGE:$tag" >/dev/null 2>&1 ||
        LMS_IMAGE_TAG=$tag "${COMPOSE[@]}" pull --quiet "${NODES[0]}" ||
        fail "no image $IMAGE:$tag here and none to pull; build it first:" \
            "docker build -t $IMAGE:$tag $(dirname -- "$DEPLOY_DIR")"
}

# --- commands -------------------------------------------------------------------------------

cmd_deploy() {
    local tag=${1:-}
    valid_tag "$tag" || fail "deploy needs an image tag (letters, digits, _ . -), got '${tag}'"
    local current previous
    current=$(state_get current)
    previous=$(state_get previous)
    export LMS_IMAGE_TAG=$tag
    find_services
    ensure_image "$tag"
    # The schema moves first, while the old nodes still serve: every migration is backward
    # compatible with the previous release (docs/migrations.md), so old and new nodes share it.
    say "migrating the database with $IMAGE:$tag"
    run env "LMS_IMAGE_TAG=$tag" "${COMPOSE[@]}" run --rm migrate ||
        fail "migration with $IMAGE:$tag failed; no service was switched (still ${current:-as before})"
    # Recorded before the switch, so a switch that stops half-way can still be rolled back.
    if [[ $tag != "$current" ]]; then
        state_put "$tag" "$current"
    else
        state_put "$tag" "$previous"
    fi
    # Start what is not running (the whole stack on a first deploy or after a restore); what
    # runs is left to the switch below, one service at a time.
    run env "LMS_IMAGE_TAG=$tag" "${COMPOSE[@]}" up -d --no-recreate
    switch_to "$tag"
    $DRY_RUN || say "deployed $IMAGE:$tag (previous: ${current:-none})"
}

cmd_rollback() {
    local current previous
    current=$(state_get current)
    previous=$(state_get previous)
    [[ -n $previous ]] || fail "no previous tag recorded in $STATE_FILE; nothing to roll back to"
    export LMS_IMAGE_TAG=$previous
    find_services
    ensure_image "$previous"
    # No migration runs, in either direction: the schema the newer release left is one the
    # previous release runs on (migrations stay backward compatible for one release), and a
    # downgrade would drop what the newer nodes wrote.
    say "rolling back to $IMAGE:$previous from ${current:-unknown}; the schema stays as it is"
    state_put "$previous" "$current"
    switch_to "$previous"
    $DRY_RUN || say "rolled back to $IMAGE:$previous"
}

cmd_status() {
    local current previous service
    current=$(state_get current)
    previous=$(state_get previous)
    say "current:  ${current:-none recorded}"
    say "previous: ${previous:-none recorded}"
    find_services
    run "${COMPOSE[@]}" ps -a
    $DRY_RUN && return 0
    for service in "${NODES[@]}"; do
        if node_ready "$service"; then say "$service: ready"; else say "$service: NOT ready"; fi
    done
    for service in "${WORKERS[@]}"; do
        if worker_ready "$service"; then say "$service: transcoding"; else say "$service: NOT running"; fi
    done
}

# --- backup and restore: the same steps, through compose or straight to the database --------

pg() {
    local program=$1
    shift
    "${PG_BIN:+$PG_BIN/}$program" "$@"
}

local_media_dir() {
    [[ -n ${LMS_MEDIA_DIR:-} ]] || fail "DEPLOY_MODE=local needs LMS_MEDIA_DIR"
    printf '%s' "$LMS_MEDIA_DIR"
}

local_database_url() {
    [[ -n ${LMS_DATABASE_URL:-} ]] || fail "DEPLOY_MODE=local needs LMS_DATABASE_URL"
    printf '%s' "$LMS_DATABASE_URL"
}

# One SQL query's single value.
sql_value() {
    case $MODE in
        local) pg psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$(local_database_url)" -c "$1" ;;
        compose) "${COMPOSE[@]}" exec -T postgres psql -X -q -A -t -v ON_ERROR_STOP=1 \
            -U "$PG_USER" -d "$PG_DB" -c "$1" ;;
    esac
}

dump_database() {
    case $MODE in
        local) pg pg_dump --format=custom --file="$1" -d "$(local_database_url)" ;;
        compose) "${COMPOSE[@]}" exec -T postgres pg_dump --format=custom -U "$PG_USER" -d "$PG_DB" >"$1" ;;
    esac
}

restore_database() {
    # One transaction: a restore that fails leaves the database as empty as it found it.
    local -a options=(--no-owner --no-acl --single-transaction --exit-on-error)
    case $MODE in
        local) pg pg_restore "${options[@]}" -d "$(local_database_url)" "$1" ;;
        compose) "${COMPOSE[@]}" exec -T postgres pg_restore "${options[@]}" \
            -U "$PG_USER" -d "$PG_DB" <"$1" ;;
    esac
}

# A command in a one-off container of the first node's service, which mounts the media volume.
in_media_container() {
    "${COMPOSE[@]}" run --rm --no-deps -T --entrypoint "$1" "${NODES[0]}" "${@:2}"
}

archive_media() {
    case $MODE in
        local)
            local dir
            dir=$(local_media_dir)
            [[ -d $dir ]] || fail "media directory $dir does not exist"
            tar -C "$dir" -cf "$1" .
            ;;
        compose) in_media_container tar -C "$MEDIA_IN_IMAGE" -cf - . >"$1" ;;
    esac
}

media_has_files() {
    case $MODE in
        local) [[ -n $(find "$(local_media_dir)" -type f -print -quit 2>/dev/null) ]] ;;
        compose) [[ -n $(in_media_container find "$MEDIA_IN_IMAGE" -type f -print -quit) ]] ;;
    esac
}

extract_media() {
    case $MODE in
        local)
            local dir
            dir=$(local_media_dir)
            mkdir -p -- "$dir"
            tar -C "$dir" -xf "$1"
            ;;
        compose) in_media_container tar -C "$MEDIA_IN_IMAGE" -xf - <"$1" ;;
    esac
}

check_mode() {
    case $MODE in
        local) ;;
        compose) find_services ;;
        *) fail "DEPLOY_MODE must be compose or local, not '$MODE'" ;;
    esac
}

PARTIAL=""
remove_partial() {
    [[ -z $PARTIAL ]] || rm -rf -- "$PARTIAL"
}

cmd_backup() {
    local root=${1:-${BACKUP_DIR:-/var/backups/lms}} keep=${BACKUP_KEEP:-7}
    [[ $keep =~ ^[1-9][0-9]*$ ]] || fail "BACKUP_KEEP must be a whole number of at least 1, not '$keep'"
    check_mode
    local name
    name=lms-backup-$(date -u +%Y%m%dT%H%M%S.%3NZ)
    mkdir -p -- "$root"
    # Written under .partial and renamed when complete: retention and restore never see half a
    # backup, and a failed one is removed.
    PARTIAL=$root/$name.partial
    trap remove_partial EXIT
    mkdir -- "$PARTIAL"
    # The database first: every file its rows name was written before the row was committed,
    # so the archive taken after holds it (files only ever added later are harmless extras).
    dump_database "$PARTIAL/db.dump"
    archive_media "$PARTIAL/media.tar"
    {
        say "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        say "mode=$MODE"
        say "image_tag=$(state_get current)"
        say "schema_version=$(sql_value 'SELECT max(version) FROM schema_migrations')"
        say "files (bytes, name):"
        (cd -- "$PARTIAL" && stat -c '%s %n' db.dump media.tar)
    } >"$PARTIAL/manifest.txt"
    (cd -- "$PARTIAL" && sha256sum db.dump media.tar >SHA256SUMS)
    mv -- "$PARTIAL" "$root/$name"
    PARTIAL=""
    say "backup: $root/$name"
    prune_backups "$root" "$keep"
}

# Keep the newest `keep` complete backups in `root` (their names sort by time); touch nothing else.
prune_backups() {
    local root=$1 keep=$2 path
    local -a backups=()
    for path in "$root"/$BACKUP_GLOB; do
        [[ -f $path/SHA256SUMS ]] && backups+=("$path")
    done
    local excess=$((${#backups[@]} - keep)) i
    for ((i = 0; i < excess; i++)); do
        rm -rf -- "${backups[i]}"
        say "removed old backup ${backups[i]} (BACKUP_KEEP=$keep)"
    done
}

cmd_restore() {
    local dir=${1:-} force=${2:-}
    [[ -n $dir && -d $dir ]] || fail "restore needs a backup directory (one with SHA256SUMS), got '$dir'"
    [[ -z $force || $force == --force ]] || fail "unknown restore option '$force' (only --force)"
    check_mode
    (cd -- "$dir" && sha256sum --check --quiet SHA256SUMS) ||
        fail "$dir does not match its SHA256SUMS; refusing to restore a damaged backup"
    if [[ $MODE == compose ]]; then
        # Nothing may write while the data is replaced; they start again with `deploy.sh deploy`.
        "${COMPOSE[@]}" stop "${NODES[@]}" "${WORKERS[@]}"
        "${COMPOSE[@]}" up -d --wait postgres
    fi
    local tables
    tables=$(sql_value "SELECT count(*) FROM pg_catalog.pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
    # Both checks before anything changes, so a refusal leaves everything as it was.
    if [[ -z $force ]]; then
        ((tables == 0)) || fail "the target database has $tables tables; restore into an empty" \
            "database (createdb a new one), or pass --force to drop its public schema first"
        ! media_has_files || fail "the target media directory holds files; restore into an" \
            "empty one, or pass --force to extract over them"
    elif ((tables > 0)); then
        say "--force: dropping the public schema ($tables tables)"
        sql_value "DROP SCHEMA public CASCADE; CREATE SCHEMA public" >/dev/null
    fi
    restore_database "$dir/db.dump"
    extract_media "$dir/media.tar"
    say "restored $dir"
    [[ $MODE == local ]] ||
        say "start the services with: $0 deploy TAG (it migrates first, should the image be newer)"
}

usage() {
    sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

main() {
    local command=${1:-}
    (($# > 0)) && shift
    local -a args=()
    local arg
    for arg in "$@"; do
        if [[ $arg == --dry-run ]]; then DRY_RUN=true; else args+=("$arg"); fi
    done
    case $command in
        deploy | rollback | status)
            [[ $MODE == compose ]] || fail "$command drives docker compose; it has no DEPLOY_MODE=$MODE"
            ;;
        *) ! $DRY_RUN || fail "--dry-run is for deploy, rollback and status" ;;
    esac
    # compose.prod.yaml names the image by LMS_IMAGE_TAG: the running one, unless told otherwise
    # (deploy and rollback pass their own on every command that starts a container).
    local current
    current=$(state_get current)
    [[ -n ${LMS_IMAGE_TAG:-} || -z $current ]] || export LMS_IMAGE_TAG=$current
    case $command in
        deploy) cmd_deploy "${args[@]}" ;;
        rollback) cmd_rollback ;;
        status) cmd_status ;;
        backup) cmd_backup "${args[@]}" ;;
        restore) cmd_restore "${args[@]}" ;;
        *) usage ;;
    esac
}

main "$@"
