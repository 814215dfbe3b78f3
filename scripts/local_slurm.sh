#!/usr/bin/env bash
# local_slurm.sh - install, start, stop a real single-machine SLURM cluster
# (munged + MariaDB + slurmdbd + slurmctld + slurmd) for tests and CI.
#
# Usage:  bash scripts/local_slurm.sh install|start|stop [--clean]|status|env
#
#   install       apt-get the Debian packages (apt-get update only if needed).
#   start         install if needed, write configs, start every daemon, wait
#                 until the node(s) are idle and sacct answers. Idempotent.
#   stop          stop the daemons started by this script (pid files).
#   stop --clean  also delete the state folder.
#   status        print sinfo and each daemon's state; exit 0 only if usable.
#   env           print `export SLURM_CONF=...` for this state folder.
#
# Needs root (apt-get, daemons run as root, SlurmUser=root).
# Environment:
#   RSN_SLURM_DIR        state folder (default /tmp/rsn-slurm); every config,
#                        log, pid, spool, munge key/socket and database is here.
#   RSN_SLURM_NODES      number of slurmd daemons/nodes: 2 (default) or 1.
#                        Debian's slurm 22.05 build supports multiple-slurmd
#                        (`slurmd -N n1`), so by default there are two nodes
#                        n1, n2, each declaring all the machine's CPUs and
#                        half its memory, one Port= each, on this host.
#   RSN_SLURM_PORT_BASE  first TCP port (default 16817): slurmctld=+0,
#                        slurmdbd=+2, mariadb=+3 (127.0.0.1 only), slurmd=+10..
#   RSN_SLURM_START_TIMEOUT  seconds to wait for the cluster (default 60).
#   RSN_SLURM_NO_ETC=1   do not touch /etc/slurm/slurm.conf (use `env`).
#
# Files written outside the state folder: a line "127.0.0.1 n1 n2" in /etc/hosts (DDP's MASTER_ADDR is
# the first node's name), and /etc/slurm/slurm.conf is made a
# symlink to $RSN_SLURM_DIR/etc/slurm.conf (only if it is absent or already
# such a symlink) so that sinfo/sbatch/squeue/sacct/scontrol work from any
# shell without SLURM_CONF, and /run/munge/munge.socket.2 is made a symlink to
# the state folder's munged socket (sacct/sacctmgr talk to slurmdbd through
# munge's default socket, ignoring AuthInfo=socket=). `stop --clean` removes
# both symlinks again. The packages' /etc/munge/munge.key is not used (the
# key is in the state folder). `install` creates /usr/sbin/policy-rc.d for
# the duration of apt-get (if absent) so that the system services of munge,
# mariadb and slurm are not started by the packages.
set -euo pipefail

DIR="${RSN_SLURM_DIR:-/tmp/rsn-slurm}"
NNODES="${RSN_SLURM_NODES:-2}"
PORT_BASE="${RSN_SLURM_PORT_BASE:-16817}"
START_TIMEOUT="${RSN_SLURM_START_TIMEOUT:-60}"
CLUSTER=rsn
ETC_CONF=/etc/slurm/slurm.conf
PACKAGES=(slurm-wlm slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client)

CTLD_PORT=$PORT_BASE
DBD_PORT=$((PORT_BASE + 2))
DB_PORT=$((PORT_BASE + 3))
SLURMD_PORT0=$((PORT_BASE + 10))

CONF="$DIR/etc/slurm.conf"
DBD_CONF="$DIR/etc/slurmdbd.conf"
MUNGE_SOCK="$DIR/munge/munge.socket"
SYS_MUNGE_SOCK=/run/munge/munge.socket.2
DB_SOCK="$DIR/mysql/mysqld.sock"
DB_PASS=rsnslurm

log() { echo "local_slurm: $*"; }
die() { echo "local_slurm: ERROR: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

node_names() {
    if [ "$NNODES" = 1 ]; then echo n1; else echo n1 n2; fi
}

# --- pid helpers -----------------------------------------------------------
pid_of() {  # pidfile -> pid if alive
    local f=$1 p
    [ -s "$f" ] || return 1
    p=$(tr -dc '0-9' <"$f")
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}
running() { pid_of "$1" >/dev/null; }

wait_for() {  # timeout_s description command...
    local end=$((SECONDS + $1))
    shift 2
    while :; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.25
    done
}

fail_log() {  # description logfile
    echo "local_slurm: ERROR: $1; last lines of $2:" >&2
    tail -n 25 "$2" >&2 2>/dev/null || echo "  (no log file)" >&2
    exit 1
}

stop_pidfiles() {  # name=pidfile... : TERM them all, wait (15 s), then KILL
    local spec name f p i left
    local -a pids=()
    for spec in "$@"; do
        name=${spec%%=*}; f=${spec#*=}
        if p=$(pid_of "$f"); then
            log "stopping $name (pid $p)"
            kill -TERM "$p" 2>/dev/null || true
            pids+=("$p")
        else
            log "$name not running"
        fi
    done
    for ((i = 0; i < 60; i++)); do
        left=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
        [ "$left" = 0 ] && break
        sleep 0.25
    done
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            log "pid $p did not stop in 15 s, killing it"
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    for spec in "$@"; do rm -f "${spec#*=}"; done
}

# --- install ---------------------------------------------------------------
binaries_present() {
    local b
    for b in slurmd slurmctld slurmdbd sinfo sbatch sacct sacctmgr munged \
        mariadbd mariadb-install-db mariadb; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

cmd_install() {
    need_root
    if binaries_present; then
        log "packages already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "apt-get update"
    apt-get update -qq >/dev/null
    # Keep the packages' own services (system munge/mariadb/slurm) from
    # starting: this script runs its own daemons in the state folder.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    log "apt-get install ${PACKAGES[*]}"
    local rc=0
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/tmp/local_slurm_apt.log 2>&1 || rc=$?
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ "$rc" != 0 ]; then
        tail -n 20 /tmp/local_slurm_apt.log >&2
        die "apt-get install failed (rc=$rc)"
    fi
    binaries_present || die "packages installed but binaries missing"
    log "packages installed"
}

# --- configuration ---------------------------------------------------------
write_configs() {
    local hw cpus mem ncpu nmem host defmem i name
    mkdir -p "$DIR"/{etc,log,run,ctld,spool,munge,mysql}
    chmod 0755 "$DIR" "$DIR"/munge
    hw=$(slurmd -C | head -n 1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [ -n "$cpus" ] && [ -n "$mem" ] || die "cannot parse 'slurmd -C': $hw"
    host=$(hostname -s)
    [ "$cpus" -ge 2 ] || NNODES=1
    # keep a little memory back for the OS
    mem=$((mem * 9 / 10))

    {
        cat <<EOF
# generated by scripts/local_slurm.sh - do not edit
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10: a requeued job becomes eligible again after cred_expire+1 s
# (default 120 s, which would make requeue tests slow)
AuthInfo=socket=$MUNGE_SOCK,cred_expire=10
# refuse at submit time (instead of leaving PENDING) jobs over partition limits
EnforcePartLimits=ALL
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
SlurmdTimeout=30
SlurmctldTimeout=30
InactiveLimit=30
MessageTimeout=10
# SIGTERM then SIGKILL after KillWait seconds: SLURM's default, as on a real cluster (the SIGTERM checkpoint must fit)
KillWait=30
MinJobAge=300
Waittime=0
JobRequeue=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
EOF
        if [ "$NNODES" = 1 ]; then
            defmem=$((mem / cpus)); [ "$defmem" -gt 1024 ] && defmem=1024
            echo "DefMemPerCPU=$defmem"
            echo "NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$SLURMD_PORT0 CPUs=$cpus RealMemory=$mem State=UNKNOWN"
            echo "PartitionName=cpu Nodes=n1 Default=YES MaxTime=UNLIMITED State=UP OverSubscribe=NO"
            echo "PartitionName=short Nodes=n1 Default=NO MaxTime=5 State=UP"
        else
            nmem=$((mem / 2))
            defmem=$((nmem / cpus)); [ "$defmem" -gt 1024 ] && defmem=1024
            echo "DefMemPerCPU=$defmem"
            i=0
            # each node declares all of the machine's CPUs (config_overrides: slurmd accepts a node
            # bigger than its share), so that a job of trainer.devices=2 tasks fits on one node, as on a
            # real cluster, while jobs of one task per node span both (multi-node DDP)
            echo "SlurmdParameters=config_overrides"
            for name in n1 n2; do
                ncpu=$cpus
                echo "NodeName=$name NodeHostname=$host NodeAddr=127.0.0.1 Port=$((SLURMD_PORT0 + i)) CPUs=$ncpu RealMemory=$nmem State=UNKNOWN"
                i=$((i + 1))
            done
            echo "PartitionName=cpu Nodes=n1,n2 Default=YES MaxTime=UNLIMITED State=UP"
            echo "PartitionName=short Nodes=n1,n2 Default=NO MaxTime=5 State=UP"
        fi
    } >"$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    chmod 0644 "$CONF"

    umask 077
    cat >"$DBD_CONF" <<EOF
# generated by scripts/local_slurm.sh - do not edit
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    umask 022
    chmod 0600 "$DBD_CONF"
    link_etc_conf
}

# link_path LINK TARGET WARNING: make LINK a symlink to TARGET, unless LINK is a real file (then WARNING)
link_path() {
    mkdir -p "$(dirname "$1")"
    if [ -L "$1" ] || [ ! -e "$1" ]; then
        if [ "$(readlink "$1" 2>/dev/null || true)" != "$2" ]; then
            ln -sfn "$2" "$1"
            log "linked $1 -> $2"
        fi
    else
        log "WARNING: $3"
    fi
}

link_etc_conf() {
    [ "${RSN_SLURM_NO_ETC:-0}" = 1 ] && return 0
    link_path "$ETC_CONF" "$CONF" "$ETC_CONF is a real file, not replacing it; run: export SLURM_CONF=$CONF"
}

# Slurm 22.05 honours AuthInfo=socket= for slurmctld traffic but the
# persistent connections to slurmdbd (sacctmgr, sacct) use munge's default
# socket, so point that at our munged (only if it is absent or a symlink).
link_munge_socket() {
    link_path "$SYS_MUNGE_SOCK" "$MUNGE_SOCK" "$SYS_MUNGE_SOCK belongs to another munged; sacct/sacctmgr will use it"
}

# Jobs see their nodes by name (SLURM_NODELIST=n1,...): Lightning's SLURM environment makes the first one
# DDP's MASTER_ADDR, so the node names must resolve (to this host): one marked line in /etc/hosts.
HOSTS_MARK="# rsn-slurm nodes (scripts/local_slurm.sh)"
name_nodes() {
    if ! grep -qF "$HOSTS_MARK" /etc/hosts; then
        echo "127.0.0.1 n1 n2 $HOSTS_MARK" >>/etc/hosts
        log "added n1 n2 -> 127.0.0.1 to /etc/hosts"
    fi
}
unname_nodes() {
    if grep -qF "$HOSTS_MARK" /etc/hosts; then
        grep -vF "$HOSTS_MARK" /etc/hosts >/etc/hosts.rsn-slurm && cat /etc/hosts.rsn-slurm >/etc/hosts
        rm -f /etc/hosts.rsn-slurm
        log "removed n1 n2 from /etc/hosts"
    fi
}

# SLURM_CONF is exported for the daemons and for this script's own client
# calls (works even if /etc/slurm/slurm.conf could not be linked).
export_conf() { export SLURM_CONF="$CONF"; }

# --- daemons ---------------------------------------------------------------
start_munge() {
    local pidf="$DIR/run/munged.pid"
    if running "$pidf"; then log "munged already running"; link_munge_socket; return 0; fi
    if [ ! -s "$DIR/munge/munge.key" ]; then
        log "creating munge key"
        (umask 077; dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none)
    fi
    chown root:root "$DIR/munge/munge.key"
    chmod 0400 "$DIR/munge/munge.key"
    log "starting munged"
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
    munged --force --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
        --log-file="$DIR/log/munged.log" --pid-file="$pidf" \
        --seed-file="$DIR/munge/munged.seed" >>"$DIR/log/munged.log" 2>&1 ||
        fail_log "munged failed to start" "$DIR/log/munged.log"
    wait_for 15 munged test -S "$MUNGE_SOCK" || fail_log "munged socket did not appear" "$DIR/log/munged.log"
    link_munge_socket
    if command -v munge >/dev/null && command -v unmunge >/dev/null; then
        munge -S "$MUNGE_SOCK" -n | unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1 ||
            fail_log "munge credential test failed" "$DIR/log/munged.log"
    fi
}

db_sql() { mariadb --no-defaults --protocol=socket --socket="$DB_SOCK" -uroot "$@"; }

start_mariadb() {
    local pidf="$DIR/run/mariadb.pid" dblog="$DIR/log/mariadb.log" fresh=0
    if running "$pidf"; then log "mariadb already running"; return 0; fi
    if [ ! -d "$DIR/mysql/data/mysql" ]; then
        log "initialising mariadb data folder"
        rm -rf "$DIR/mysql/data"
        mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$DIR/log/mariadb-install.log" 2>&1 ||
            fail_log "mariadb-install-db failed" "$DIR/log/mariadb-install.log"
        fresh=1
    fi
    log "starting mariadb on 127.0.0.1:$DB_PORT"
    nohup mariadbd --no-defaults --user=root --datadir="$DIR/mysql/data" \
        --socket="$DB_SOCK" --pid-file="$pidf" --log-error="$dblog" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
        --performance-schema=OFF --innodb-lock-wait-timeout=900 \
        --max-allowed-packet=64M >>"$dblog" 2>&1 </dev/null &
    wait_for 60 mariadb db_sql -e 'SELECT 1' || fail_log "mariadb did not answer in 60 s" "$dblog"
    if [ "$fresh" = 1 ] || ! db_sql -e 'SELECT 1 FROM mysql.user WHERE user="slurm"' | grep -q 1; then
        log "creating database user slurm"
        db_sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
            CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
            FLUSH PRIVILEGES;"
    fi
}

sacctmgr_ok() { timeout 10 sacctmgr -n -P list cluster format=cluster; }

start_slurmdbd() {
    local pidf="$DIR/run/slurmdbd.pid"
    if running "$pidf"; then log "slurmdbd already running"; return 0; fi
    log "starting slurmdbd on port $DBD_PORT"
    # slurmdbd has no -f: it reads slurmdbd.conf next to $SLURM_CONF
    SLURM_CONF="$CONF" slurmdbd >>"$DIR/log/slurmdbd.log" 2>&1 ||
        fail_log "slurmdbd failed to start" "$DIR/log/slurmdbd.log"
    wait_for 60 slurmdbd sacctmgr_ok || fail_log "slurmdbd did not answer in 60 s" "$DIR/log/slurmdbd.log"
}

setup_accounting() {
    wait_for 30 slurmdbd sacctmgr_ok || fail_log "slurmdbd did not answer in 30 s" "$DIR/log/slurmdbd.log"
    if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        log "adding cluster $CLUSTER, account rsn and users to accounting"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if ! sacctmgr -n -P list account format=account 2>/dev/null | grep -qx rsn; then
        sacctmgr -i add account rsn cluster="$CLUSTER" Description=rsn Organization=rsn >/dev/null
    fi
    local u
    for u in root ${SUDO_USER:-} ${RSN_SLURM_USERS:-}; do
        id "$u" >/dev/null 2>&1 || continue
        if ! sacctmgr -n -P list assoc user="$u" cluster="$CLUSTER" format=user 2>/dev/null | grep -qx "$u"; then
            sacctmgr -i add user "$u" account=rsn cluster="$CLUSTER" >/dev/null ||
                log "WARNING: could not add user $u to accounting"
        fi
    done
}

start_slurmctld() {
    local pidf="$DIR/run/slurmctld.pid"
    if running "$pidf"; then log "slurmctld already running"; return 0; fi
    log "starting slurmctld on port $CTLD_PORT"
    slurmctld -f "$CONF" >>"$DIR/log/slurmctld.log" 2>&1 ||
        fail_log "slurmctld failed to start" "$DIR/log/slurmctld.log"
    wait_for 30 slurmctld timeout 5 scontrol ping ||
        fail_log "slurmctld did not answer in 30 s" "$DIR/log/slurmctld.log"
}

start_slurmd() {
    local n pidf
    for n in $(node_names); do
        pidf="$DIR/run/slurmd-$n.pid"
        if running "$pidf"; then log "slurmd $n already running"; continue; fi
        mkdir -p "$DIR/spool/$n"
        log "starting slurmd $n"
        slurmd -f "$CONF" -N "$n" >>"$DIR/log/slurmd-$n.log" 2>&1 ||
            fail_log "slurmd $n failed to start" "$DIR/log/slurmd-$n.log"
    done
}

nodes_idle() {  # every node idle/mixed/allocated (usable), none down
    local states
    states=$(timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null | sort -u) || return 1
    [ -n "$states" ] || return 1
    ! grep -vqE ' (idle|mixed|allocated|completing)$' <<<"$states"
}

cluster_ok() {
    nodes_idle && timeout 10 sacct -n -X -S now-1minutes >/dev/null 2>&1
}

cmd_start() {
    need_root
    binaries_present || cmd_install
    case "$NNODES" in 1 | 2) ;; *) die "RSN_SLURM_NODES must be 1 or 2" ;; esac
    export_conf
    local t0=$SECONDS
    log "state folder $DIR ($NNODES node(s))"
    name_nodes
    if [ -s "$CONF" ] && running "$DIR/run/slurmctld.pid" && cluster_ok; then
        link_etc_conf
        log "cluster already running and usable"
        return 0
    fi
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd
    setup_accounting
    start_slurmctld
    start_slurmd
    log "waiting (up to ${START_TIMEOUT}s) for node(s) to become idle"
    if ! wait_for "$START_TIMEOUT" nodes nodes_idle; then
        sinfo -N -l >&2 || true
        local n
        for n in $(node_names); do tail -n 15 "$DIR/log/slurmd-$n.log" >&2 || true; done
        fail_log "nodes not idle after ${START_TIMEOUT}s" "$DIR/log/slurmctld.log"
    fi
    # Nodes that were DOWN from an earlier run may need a nudge.
    wait_for 30 sacct cluster_ok || fail_log "sacct does not answer" "$DIR/log/slurmdbd.log"
    log "cluster ready in $((SECONDS - t0))s: $(sinfo -h -N -o '%N=%T' | sort -u | tr '\n' ' ')"
}

cmd_stop() {
    local clean=0
    [ "${1:-}" = --clean ] && clean=1
    local n
    if [ -d "$DIR/run" ]; then
        local -a nodes=()
        for n in n1 n2; do
            [ -e "$DIR/run/slurmd-$n.pid" ] && nodes+=("slurmd-$n=$DIR/run/slurmd-$n.pid")
        done
        # order: node daemons + controller, then accounting, then db + munge
        stop_pidfiles "${nodes[@]}" "slurmctld=$DIR/run/slurmctld.pid"
        stop_pidfiles "slurmdbd=$DIR/run/slurmdbd.pid"
        stop_pidfiles "mariadb=$DIR/run/mariadb.pid" "munged=$DIR/run/munged.pid"
    else
        log "no state folder $DIR, nothing to stop"
    fi
    if [ "$clean" = 1 ]; then
        if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then
            rm -f "$ETC_CONF"
            log "removed $ETC_CONF symlink"
        fi
        if [ -L "$SYS_MUNGE_SOCK" ] && [ "$(readlink "$SYS_MUNGE_SOCK")" = "$MUNGE_SOCK" ]; then
            rm -f "$SYS_MUNGE_SOCK"
            log "removed $SYS_MUNGE_SOCK symlink"
        fi
        unname_nodes
        log "removing $DIR"
        rm -rf "$DIR"
    fi
    log "stopped"
}

cmd_status() {
    export_conf
    local ok=0 n
    check() {
        if running "$2"; then log "$1 running (pid $(pid_of "$2"))"; else log "$1 NOT running"; ok=1; fi
    }
    check munged "$DIR/run/munged.pid"
    check mariadb "$DIR/run/mariadb.pid"
    check slurmdbd "$DIR/run/slurmdbd.pid"
    check slurmctld "$DIR/run/slurmctld.pid"
    for n in n1 n2; do
        [ -e "$DIR/run/slurmd-$n.pid" ] || [ "$n" = n1 ] || continue
        check "slurmd $n" "$DIR/run/slurmd-$n.pid"
    done
    if [ "$ok" = 0 ]; then
        timeout 5 sinfo || ok=1
        if cluster_ok; then log "cluster usable"; else log "cluster NOT usable"; ok=1; fi
    fi
    return $ok
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 install|start|stop [--clean]|status|env" >&2; exit 2 ;;
esac
