#!/usr/bin/env bash
# bench/run.sh: smtpban side by side with grep, fail2ban-regex and sshguard's
# parser on one generated mail log, then the daemon's ban latency, restart,
# memory and CPU. Needs root (apt-get, network namespaces, nftables).
# Not part of CI. See docs/benchmarks.md for the figures and what they mean.
#
#   bench/run.sh                      # defaults: about 8 minutes on 2 cores
#   N=200000 RUNS=3 bench/run.sh      # quicker
#
# Parameters (environment):
#   N         lines in the generated log (1000000)
#   SEED      generator seed (1)
#   RUNS      timed runs per tool, median reported (5)
#   F2B_RUNS  runs of fail2ban-regex per filter ($RUNS; each takes ~12 s per filter on 1M lines)
#   CPU       core to pin to with taskset (1)
#   BANS      ban-latency samples (200)
#   RESTORE   bans in state for the restart test (100000)
#   MEM_ADDRS distinct addresses for the memory test (1000000)
#   RATE SECS daemon CPU test: lines/s and seconds (5000, 30)
#   OUT       work directory (a new one under /tmp)
set -euo pipefail

N=${N:-1000000}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
F2B_RUNS=${F2B_RUNS:-$RUNS}
CPU=${CPU:-1}
BANS=${BANS:-200}
RESTORE=${RESTORE:-100000}
MEM_ADDRS=${MEM_ADDRS:-1000000}
RATE=${RATE:-5000}
SECS=${SECS:-30}
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
(cd "$ROOT" && go build -o "$BIN/" ./cmd/smtpban ./cmd/smtpband ./bench/gen ./bench/daemon)
ls "$BIN"

say "generate $N lines (seed $SEED)"
"$BIN/gen" -n "$N" -seed "$SEED" -out "$LOG" -truth "$OUT/truth.json"
echo "$LOG: $(stat -c %s "$LOG") bytes"; cat "$OUT/truth.json"

say "fail2ban and sshguard (Debian packages; never left running)"
need=()
command -v fail2ban-regex >/dev/null || need+=(fail2ban)
[ -x /usr/libexec/sshguard/sshg-parser ] || need+=(sshguard)
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
dpkg-query -W -f '${Package} ${Version}\n' fail2ban sshguard 2>/dev/null || true

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
f2b=0
for f in "${F2B_FILTERS[@]}"; do
	t=$(median_time "$F2B_RUNS" "fail2ban-regex '$LOG' '$f' > '$OUT/f2b.out'")
	m=$(awk '/^Lines:/{print $6}' "$OUT/f2b.out")
	echo "fail2ban-regex $f: ${t}s, $m lines matched"
	f2b=$(echo "$f2b + $t" | bc -l)
done
T[fail2ban]=$f2b
SSHG=/usr/libexec/sshguard/sshg-parser
T[sshguard]=$(median_time "$RUNS" "'$SSHG' < '$LOG'")
echo "sshg-parser: $("$SSHG" <"$LOG" | wc -l) attacks reported"

say "table"
row() { # name key
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

say "Go benchmarks: restore 100k (netlink vs nft -f), counter memory"
(cd "$ROOT" && go test -run XXX -bench 'Restore100k' -benchtime 3x ./firewall/) || echo "firewall benchmark failed (package being edited?)"
(cd "$ROOT" && go test -run XXX -bench 'CounterMemory' -benchtime 1x ./jails/) || echo "jails benchmark failed (package being edited?)"

say "daemon: ban latency ($BANS bans)"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -bans "$BANS" latency
say "daemon: restart with $RESTORE bans in state"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -restore "$RESTORE" restart
say "daemon: memory with $MEM_ADDRS distinct addresses"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -addrs "$MEM_ADDRS" memory
say "daemon: CPU at $RATE lines/s for ${SECS}s"
"$BIN/daemon" -bin "$BIN" -jails "$ROOT/configs/jails.d" -mixed "$LOG" -rate "$RATE" -secs "$SECS" cpu

say "done; work files in $OUT"
