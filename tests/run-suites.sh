#!/usr/bin/env bash
# Runs test suites at the same time, each a make target with its own log, then prints each
# suite's summary and one total line. `make test` calls it once everything is built.
#   tests/run-suites.sh SUITE...      SUITE = a make target, e.g. test-e2e
# Suites named in NICE_SUITES (compiling ones) run at a lower CPU priority, so the end-to-end
# suites' Prosody processes, whose tests measure latency, are not starved. Logs: $LOG_DIR.
set -u
cd "$(dirname "$0")/.."
LOG_DIR=${LOG_DIR:-target/test-logs}
MAKE=${MAKE:-make}
NICE_SUITES=" ${NICE_SUITES:-} "
mkdir -p "$LOG_DIR"

declare -A pid started
for suite in "$@"; do
	log="$LOG_DIR/$suite.log"
	prefix=()
	[[ $NICE_SUITES == *" $suite "* ]] && prefix=(nice -n 10)
	started[$suite]=$SECONDS
	"${prefix[@]}" "$MAKE" --no-print-directory "$suite" >"$log" 2>&1 </dev/null &
	pid[$suite]=$!
	echo "suite $suite: started (log $log)"
done

# Test counts from each runner's own summary lines: node --test ("# pass N", "# fail N"),
# cargo test ("test result: ok. N passed; M failed"), tests/lua/run.lua ("lua: N passed, M failed").
counts() {
	awk '
		/^# pass [0-9]+$/ { p += $3 } /^# fail [0-9]+$/ { f += $3 }
		/^test result: / { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
		/^lua: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
		END { printf "%d %d\n", p, f }' "$1"
}
summary() {
	grep -E '^# (tests|pass|fail|cancelled|skipped|todo) [0-9]+$|^test result: |^lua: [0-9]+ passed|^Done [0-9]+ runs|^fuzz: ' "$1" |
		awk '/^# tests/ { if (n++) print "  --" } { print "  " $0 }' | tail -40
}

total_pass=0 total_fail=0 failed_suites=()
for suite in "$@"; do
	wait "${pid[$suite]}"
	rc=$?
	took=$((SECONDS - started[$suite]))
	log="$LOG_DIR/$suite.log"
	read -r p f < <(counts "$log")
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "$rc" -eq 0 ]; then
		printf '\n== %s: passed (%d:%02d; %d tests)\n' "$suite" $((took / 60)) $((took % 60)) "$p"
		summary "$log"
	else
		failed_suites+=("$suite")
		printf '\n== %s: FAILED (exit %d, %d:%02d; %d passed, %d failed); last lines of %s:\n' \
			"$suite" "$rc" $((took / 60)) $((took % 60)) "$p" "$f" "$log"
		grep -E '^\s*not ok ' "$log" | head -20 | sed 's/^/  /'
		tail -60 "$log" | sed 's/^/  | /'
		# A suite that failed without reporting a failing test still counts as one failure.
		[ "$f" -eq 0 ] && total_fail=$((total_fail + 1))
	fi
done

echo
if [ ${#failed_suites[@]} -gt 0 ]; then
	echo "failed suites: ${failed_suites[*]}"
fi
echo "$total_pass passed, $total_fail failed ($(( $# - ${#failed_suites[@]} )) of $# suites passed, $((SECONDS / 60)) min $((SECONDS % 60)) s)"
[ ${#failed_suites[@]} -eq 0 ]
