#!/usr/bin/env bash
# Runs test suites side by side, each a make target with its own log, then prints each suite's
# summary and one total line. `make test` calls it once everything shared is built.
#   tests/run-suites.sh SUITE... [--then SUITE...]...
# SUITE is a make target (e.g. test-e2e). The suites of a group run at the same time; `--then`
# waits for the group before starting the next one (the suites whose tests time latencies run
# last, on a quiet machine). Suites named in NICE_SUITES (the compiling ones) run at a lower CPU
# priority. A suite still running after SUITE_TIMEOUT seconds (default 1500) is stopped and
# fails, so one hung test process (a deadlock inside Node, say) cannot hold the whole run.
# Logs: $LOG_DIR/<suite>.log.
set -u
cd "$(dirname "$0")/.."
LOG_DIR=${LOG_DIR:-target/test-logs}
MAKE=${MAKE:-make}
NICE_SUITES=" ${NICE_SUITES:-} "
SUITE_TIMEOUT=${SUITE_TIMEOUT:-1500}
mkdir -p "$LOG_DIR"

declare -A pid
suites=()
start_suite() {
	local suite=$1 log="$LOG_DIR/$1.log"
	# timeout runs the suite in a process group of its own and stops all of it.
	local prefix=(timeout --kill-after=30 "$SUITE_TIMEOUT")
	[[ $NICE_SUITES == *" $suite "* ]] && prefix+=(nice -n 10)
	rm -f "$LOG_DIR/$suite.took"
	(
		t0=$(date +%s)
		"${prefix[@]}" "$MAKE" --no-print-directory "$suite" >"$log" 2>&1 </dev/null
		rc=$?
		[ $rc -eq 124 ] && echo "run-suites: $suite stopped after ${SUITE_TIMEOUT} s" >>"$log"
		echo $(($(date +%s) - t0)) >"$LOG_DIR/$suite.took"
		exit $rc
	) &
	pid[$suite]=$!
	suites+=("$suite")
	echo "suite $suite: started (log $log)"
}

declare -A rc
wait_group() {
	for suite in "${!pid[@]}"; do
		wait "${pid[$suite]}"
		rc[$suite]=$?
		unset "pid[$suite]"
	done
}

for arg in "$@"; do
	if [ "$arg" = --then ]; then wait_group; else start_suite "$arg"; fi
done
wait_group

# Test counts from each runner's own summary lines: node --test ("# pass N", "# fail N"),
# cargo test ("test result: ok. N passed; M failed"), tests/lua/run.lua ("lua: N passed, M failed").
counts() {
	awk '
		/^# pass [0-9]+$/ { p += $3 } /^# fail [0-9]+$/ { f += $3 }
		/^test result: / { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
		/^lua: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
		END { printf "%d %d\n", p, f }' "$1"
}
# One line per runner invocation.
summary() {
	awk '
		/^# (tests|pass|fail|cancelled|skipped|todo) [0-9]+$/ {
			if ($2 == "tests") line = "node: " $3 " tests"; else if ($3 > 0 || $2 == "fail") line = line ", " $3 " " $2
			if ($2 == "todo") print "  " line
		}
		/^test result: / && !/ 0 passed; 0 failed/ { sub(/; finished in.*/, ""); sub(/; 0 measured/, ""); print "  cargo: " substr($0, 14) }
		/^lua: [0-9]+ passed/ || /^Done [0-9]+ runs/ || /^fuzz: / || /^== Lua / { print "  " $0 }' "$1"
}

total_pass=0 total_fail=0 failed_suites=()
for suite in "${suites[@]}"; do
	log="$LOG_DIR/$suite.log"
	took=$(cat "$LOG_DIR/$suite.took" 2>/dev/null || echo 0)
	read -r p f < <(counts "$log")
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "${rc[$suite]}" -eq 0 ]; then
		printf '\n== %s: passed in %d:%02d (%d tests)\n' "$suite" $((took / 60)) $((took % 60)) "$p"
		summary "$log"
	else
		failed_suites+=("$suite")
		printf '\n== %s: FAILED (exit %d) after %d:%02d (%d passed, %d failed); from %s:\n' \
			"$suite" "${rc[$suite]}" $((took / 60)) $((took % 60)) "$p" "$f" "$log"
		grep -E '^\s*not ok ' "$log" | head -20 | sed 's/^/  /'
		tail -60 "$log" | sed 's/^/  | /'
		# A suite that failed without reporting a failing test still counts as one failure.
		[ "$f" -eq 0 ] && total_fail=$((total_fail + 1))
	fi
done

echo
[ ${#failed_suites[@]} -gt 0 ] && echo "failed suites: ${failed_suites[*]}"
echo "$total_pass passed, $total_fail failed ($(( ${#suites[@]} - ${#failed_suites[@]} )) of ${#suites[@]} suites passed in $((SECONDS / 60)) min $((SECONDS % 60)) s)"
[ ${#failed_suites[@]} -eq 0 ]
