#!/usr/bin/env bash
# bench/run.sh: smtpban side by side with grep, fail2ban-regex, sshguard's
# parser and plain Go regex loops on one generated mail log, then the
# daemon's ban latency beside fail2ban-server's and sshguard's, restart,
# memory, CPU, and bans in a burst beside the daemon before the ban
# manager. Needs root (apt-get, network namespaces, nftables).
# Not part of CI. See docs/benchmarks.md for the figures and what they mean.
#
#   bench/run.sh                      # defaults: about 18 minutes on 2 cores
#   N=200000 RUNS=3 bench/run.sh      # quicker
#
# Parameters (environment):
#   N         lines in the generated log (1000000)
#   SEED      generator seed (1)
#   RUNS      timed runs per tool, median reported (5)
#   F2B_RUNS  runs of fail2ban-regex per filter ($RUNS; each takes ~12 s per filter on 1M lines)
#   CPU       core to pin to with taskset (1)
#   BANS      ban-latency samples (200)
#   F2B_BANS  fail2ban-server ban-latency samples (100; ~1.5 s each: a random
#             0-2 s idle before each ban, so they do not fall in step with
#             fail2ban's own polling)
#   SSHG_BANS sshguard ban-latency samples ($BANS)
#   RESTORE   bans in state for the restart test (100000)
#   MEM_ADDRS distinct addresses for the memory test (1000000)
#   RATE SECS daemon CPU test: lines/s and seconds (5000, 30)
#   BEFORE    commit whose smtpband the burst test runs beside this tree's
#             (6458f39: the last before the ban manager; empty: this tree alone)
#   BURST     distinct addresses in one burst (5000)
#   BURSTS    bursts per build (20; the 6458f39 build takes ~7-17 s each)
#   CLUSTER_BURST  bans in the cluster's burst, mx1 to mx2 (10000)
#   OUT       work directory (a new one under /tmp)
set -euo pipefail

N=${N:-1000000}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
F2B_RUNS=${F2B_RUNS:-$RUNS}
CPU=${CPU:-1}
BANS=${BANS:-200}
F2B_BANS=${F2B_BANS:-100}
SSHG_BANS=${SSHG_BANS:-$BANS}
RESTORE=${RESTORE:-100000}
MEM_ADDRS=${MEM_ADDRS:-1000000}
RATE=${RATE:-5000}
SECS=${SECS:-30}
BEFORE=${BEFORE-6458f39}
BURST=${BURST:-5000}
BURSTS=${BURSTS:-20}
CLUSTER_BURST=${CLUSTER_BURST:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/smtpban-bench.XXXXXX)}
BIN=$OUT/bin
LOG=$OUT/mail.log
CFG=$ROOT/configs/smtpban.hcl
export LC_ALL=C

say() { printf '\n== %s\n' "$*"; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (apt-get, network namespaces, nftables)"

say "machine"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "kernel: $(uname -r)"
echo "go:     $(go version)"

say "build"
mkdir -p "$BIN"
(cd "$ROOT" && go build -o "$BIN/" ./cmd/smtpban ./cmd/smtpband ./bench/gen ./bench/daemon ./bench/baseline ./bench/banlatency)
ls "$BIN"

say "generate $N lines (seed $SEED)"
"$BIN/gen" -n "$N" -seed "$SEED" -out "$LOG" -truth "$OUT/truth.json"
echo "$LOG: $(stat -c %s "$LOG") bytes"; cat "$OUT/truth.json"

say "fail2ban and sshguard (Debian packages; never left running)"
need=()
command -v fail2ban-regex >/dev/null || need+=(fail2ban)
[ -x /usr/libexec/sshguard/sshg-parser ] || need+=(sshguard)
# fail2ban's inotify backend; without it fail2ban polls.
/usr/bin/python3 -c 'import pyinotify' 2>/dev/null || need+=(python3-pyinotify)
if [ ${#need[@]} -gt 0 ]; then
	# policy-rc.d 101 keeps the packages' services from starting at install.
	made_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >"$OUT/apt.log" 2>&1 ||
		{ apt-get update >>"$OUT/apt.log" 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >>"$OUT/apt.log" 2>&1; } ||
		echo "apt-get install ${need[*]} failed, see $OUT/apt.log"
	[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl disable --now fail2ban.service sshguard.service >/dev/null 2>&1 || true
fi
for p in fail2ban-server sshguard; do
	if pgrep -x "$p" >/dev/null; then echo "WARNING: $p is running (not started by this script)"; fi
done
fail2ban-regex --version 2>/dev/null | head -1 || true
dpkg-query -W -f '${Package} ${Version}\n' fail2ban sshguard python3-pyinotify 2>/dev/null || true

# Processes bench/banlatency starts (fail2ban-server, sshguard's pipeline)
# run in their own process groups; it kills them itself, and records each
# group's id so that they die with this script too if it is killed.
kill_banlatency_groups() {
	local f
	for f in "$OUT"/banlatency-*/*.pgid; do
		[ -f "$f" ] && kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
	done
}
trap kill_banlatency_groups EXIT

# median_time CMD...: runs CMD (a shell string) $REPS times pinned to $CPU and
# prints the median wall time in seconds.
median_time() {
	local reps=$1; shift
	local ts=()
	for _ in $(seq "$reps"); do
		local s e
		s=$(date +%s.%N)
		taskset -c "$CPU" bash -c "$*" >/dev/null 2>&1 || die "failed: $*"
		e=$(date +%s.%N)
		ts+=("$(echo "$e - $s" | bc -l)")
	done
	printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}

say "correctness: smtpban replay -json against the truth file"
"$BIN/smtpban" -config "$CFG" replay -json "$LOG" >"$OUT/replay.jsonl"
"$BIN/gen" -check "$OUT/truth.json" <"$OUT/replay.jsonl" || die "smtpban replay disagrees with the truth file"

say "throughput on $N lines, pinned to CPU $CPU, median of $RUNS (fail2ban: $F2B_RUNS per filter)"
SASL_RE='postfix(-[^/]+)?/(submission/|smtps/)?smtpd\[[0-9]+\]: warning: [^ []*\[[^]]+\]: SASL [-A-Za-z0-9_]+ authentication failed'
declare -A T
# "| cat": GNU grep stops at the first match when its output is /dev/null.
T[grep-c]=$(median_time "$RUNS" "grep -c SASL '$LOG' | cat")
T[grep-cE]=$(median_time "$RUNS" "grep -cE '$SASL_RE' '$LOG' | cat")
echo "grep -c SASL: $(grep -c SASL "$LOG"); grep -cE: $(grep -cE "$SASL_RE" "$LOG") (truth: postfix-sasl $(grep -A1 postfix-sasl "$OUT/truth.json" | awk '/matched/{print $2}') plus ignored lines)"
T[replay]=$(median_time "$RUNS" "'$BIN/smtpban' -config '$CFG' replay '$LOG'")
T[replay-json]=$(median_time "$RUNS" "'$BIN/smtpban' -config '$CFG' replay -json '$LOG'")
# One fail2ban-regex run per filter that covers a shipped jail; sum them.
F2B_FILTERS=('postfix[mode=auth]' 'postfix[mode=normal]' 'dovecot')
declare -A WHY # key -> why it was not measured
if command -v fail2ban-regex >/dev/null; then
	f2b=0
	for f in "${F2B_FILTERS[@]}"; do
		t=$(median_time "$F2B_RUNS" "fail2ban-regex '$LOG' '$f' > '$OUT/f2b.out'")
		m=$(awk '/^Lines:/{print $6}' "$OUT/f2b.out")
		echo "fail2ban-regex $f: ${t}s, $m lines matched"
		f2b=$(echo "$f2b + $t" | bc -l)
	done
	T[fail2ban]=$f2b
else
	WHY[fail2ban]="fail2ban-regex not installed (see $OUT/apt.log)"
fi
SSHG=/usr/libexec/sshguard/sshg-parser
if [ -x "$SSHG" ]; then
	T[sshguard]=$(median_time "$RUNS" "'$SSHG' < '$LOG'")
	echo "sshg-parser: $("$SSHG" <"$LOG" | wc -l) attacks reported"
else
	WHY[sshguard]="$SSHG not installed (see $OUT/apt.log)"
fi

# Plain Go loops over the same file (bench/baseline): bufio read alone, one
# failregex, the same behind bytes.Contains, every shipped failregex, the
# same behind prefilters. Timed inside the process, median of $RUNS passes.
GO_CASES=(go-read go-1re go-1re-pre go-allre go-allre-pre)
if taskset -c "$CPU" "$BIN/baseline" -config "$CFG" -runs "$RUNS" "$LOG" >"$OUT/baseline.out" 2>&1; then
	grep -v '^RESULT' "$OUT/baseline.out"
	i=0
	while read -r secs; do
		T[${GO_CASES[$i]}]=$secs
		i=$((i + 1))
	done < <(sed -n 's/^RESULT .* seconds=\([0-9.]*\) .*/\1/p' "$OUT/baseline.out")
	[ "$i" = "${#GO_CASES[@]}" ] || echo "bench/baseline printed $i results, expected ${#GO_CASES[@]}"
else
	cat "$OUT/baseline.out"
	for k in "${GO_CASES[@]}"; do WHY[$k]="bench/baseline failed, see $OUT/baseline.out"; done
fi

say "table"
row() { # name key
	if [ -z "${T[$2]:-}" ]; then
		printf '| %-48s | not measured: %s | | |\n' "$1" "${WHY[$2]:-no figure}"
		return
	fi
	awk -v n="$1" -v t="${T[$2]}" -v r="${T[replay]}" -v lines="$N" \
		'BEGIN{printf "| %-48s | %8.3f | %10.3f | %8.3f |\n", n, t, lines/t/1e6, r/t}'
}
echo "| tool | seconds (median) | M lines/s | speed vs smtpban replay |"
echo "|---|---:|---:|---:|"
row "grep -c SASL" grep-c
row "grep -cE (postfix SASL regex)" grep-cE
row "smtpban replay (all 10 shipped jails)" replay
row "smtpban replay -json (all 10 shipped jails)" replay-json
row "fail2ban-regex, 3 filters, summed" fail2ban
row "sshguard sshg-parser" sshguard
row "Go: bufio read only" go-read
row "Go: 1 regex (postfix-sasl) on every line" go-1re
row "Go: 1 regex behind bytes.Contains" go-1re-pre
row "Go: every shipped failregex on every line" go-allre
row "Go: every shipped failregex behind bytes.Contains" go-allre-pre

say "Go benchmarks: restore 100k (netlink vs nft -f), counter memory"
(cd "$ROOT" && go test -run XXX -bench 'Restore100k' -benchtime 3x ./firewall/) || echo "firewall benchmark failed (package being edited?)"
(cd "$ROOT" && go test -run XXX -bench 'CounterMemory' -benchtime 1x ./jails/) || echo "jails benchmark failed (package being edited?)"

say "daemon: ban latency ($BANS bans)"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -bans "$BANS" latency | tee "$OUT/daemon-latency.out"

say "ban latency beside fail2ban-server ($F2B_BANS bans) and sshguard ($SSHG_BANS bans)"
# Each: a fresh address, 4 failure lines, 30 ms, the 5th in one write; the
# time to the tool's action (fail2ban: actionban runs sh + date +%s.%N;
# sshguard: its backend reads "block", or sshg-fw-nft-sets' nft returned).
# Not pinned: each is several processes, as the daemon test is.
LAT=()
if ! command -v fail2ban-server >/dev/null || [ ! -r /etc/fail2ban/filter.d/postfix.conf ]; then
	LAT+=("| fail2ban-server | not measured: fail2ban not installed (see $OUT/apt.log) | | | | |")
else
	f2b_backend=polling
	/usr/bin/python3 -c 'import pyinotify' 2>/dev/null && f2b_backend=pyinotify
	if "$BIN/banlatency" -dir "$OUT/banlatency-f2b" -bans "$F2B_BANS" -backend "$f2b_backend" fail2ban | tee "$OUT/f2b-latency.out"; then
		LAT+=("$(grep '^|' "$OUT/f2b-latency.out" | tail -1)")
	else
		LAT+=("| fail2ban-server | not measured: bench/banlatency failed, see $OUT/banlatency-f2b | | | | |")
	fi
fi
# sshguard twice: a backend that only records, then its own
# sshg-fw-nft-sets (one nft process per block) in a network namespace
# banlatency makes, timed until nft returns.
for fw in "" -firewall; do
	name=sshguard${fw:+ with sshg-fw-nft-sets}
	dir=$OUT/banlatency-sshg${fw}
	if [ ! -x /usr/libexec/sshguard/sshg-blocker ]; then
		LAT+=("| $name | not measured: sshguard not installed (see $OUT/apt.log) | | | | |")
	elif "$BIN/banlatency" -dir "$dir" -bans "$SSHG_BANS" -idle 100ms $fw sshguard | tee "$dir.out"; then
		LAT+=("$(grep '^|' "$dir.out" | tail -1)")
	else
		LAT+=("| $name | not measured: bench/banlatency failed, see $dir | | | | |")
	fi
done
# The daemon's line: "kernel set (netlink poll, N polls): p50 1.37ms  p90 ...  max ...".
DAEMON_ROW=$(awk -v n="$BANS" '
	function msec(s) {
		if (sub(/µs$/, "", s)) return s / 1000
		if (sub(/ms$/, "", s)) return s + 0
		if (sub(/ns$/, "", s)) return s / 1e6
		if (sub(/s$/, "", s)) return s * 1000
		return -1
	}
	/kernel set/ {
		for (i = 1; i < NF; i++) if ($i ~ /^(p50|p90|p99|max)$/) v[$i] = msec($(i + 1))
		printf "| smtpband: address in the kernel set (nftables) | %.2f | %.2f | %.2f | %.2f | %d |\n", v["p50"], v["p90"], v["p99"], v["max"], n
	}' "$OUT/daemon-latency.out")
[ -n "$DAEMON_ROW" ] || DAEMON_ROW="| smtpband | not measured: no 'kernel set' line in $OUT/daemon-latency.out | | | | |"
echo
echo "| append of the 5th failure line → | p50 ms | p90 ms | p99 ms | max ms | bans | p50 vs smtpband |"
echo "|---|---:|---:|---:|---:|---:|---:|"
# Last column: the row's p50 over smtpband's, measured above in this run.
printf '%s\n' "$DAEMON_ROW" "${LAT[@]}" | awk -F'|' '
	NR == 1 { base = $3 + 0 }
	$3 ~ /not measured/ { print $0 " |"; next }
	{ printf "%s %s |\n", $0, (base > 0 ? sprintf("%.1f×", ($3 + 0) / base) : "") }'
say "daemon: restart with $RESTORE bans in state"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -restore "$RESTORE" restart
say "daemon: memory with $MEM_ADDRS distinct addresses"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -addrs "$MEM_ADDRS" memory
say "daemon: CPU at $RATE lines/s for ${SECS}s"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -mixed "$LOG" -rate "$RATE" -secs "$SECS" cpu
say "daemon: bans in a burst, this tree${BEFORE:+ beside $BEFORE}"
# The earlier build comes from git archive, not a worktree: nothing is
# left in the repository.
before=()
if [ -n "$BEFORE" ]; then
	mkdir -p "$OUT/before-src" "$BIN/before"
	git -C "$ROOT" archive "$BEFORE" | tar -x -C "$OUT/before-src"
	(cd "$OUT/before-src" && go build -o "$BIN/before/" ./cmd/smtpband ./cmd/smtpban)
	before=(-before "$BIN/before")
fi
"$BIN/daemon" -bin "$BIN" "${before[@]}" -jails "$ROOT/configs/jails.d" -bans "$BANS" -burst "$BURST" -bursts "$BURSTS" burst

say "cluster: two daemons sharing bans through a real etcd (Debian's etcd-server)"
command -v /usr/bin/etcd >/dev/null || apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -bans "$BANS" -burst "$CLUSTER_BURST" cluster | tee "$OUT/daemon-cluster.out"

say "done; work files in $OUT"
