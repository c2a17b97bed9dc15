#!/usr/bin/env bash
# Crash safety of the directory CA store: rotate_loop rotates the CA of a
# class in an endless loop (sometimes two of them on one store, which the
# class lock must serialise) and is killed with SIGKILL after a random
# sub-second delay, ITERATIONS times.  After every kill the store must load
# (rotate_loop --check: autoGenerate off, so nothing is made up), no
# generation that was reported durable or seen by an earlier check may be
# missing unless a loop announced it was pruning it, generation numbers
# never go back, no temp file survives a locked load, and every record is
# mode 0600.
set -euo pipefail

BUILD=${SIGIL_BUILD_DIR:?SIGIL_BUILD_DIR must point at the build directory}
TOOL=$BUILD/tests/rotate_loop
ITERATIONS=${ITERATIONS:-40}
[ -x "$TOOL" ] || { echo "FAIL: $TOOL not built" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sigil-ca-crash-XXXXXX)
STORE=$WORK/store
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do
		[ -s "$f" ] && { echo "--- $f (tail)"; tail -n 5 "$f"; } >&2
	done
	exit 1
}

declare -A must=()   # generations that must be present
declare -i max_seen=0 total_kills=0 leftovers=0 concurrent=0
start=$SECONDS

"$TOOL" --init "$STORE" >"$WORK/init.out" 2>"$WORK/init.err" || fail "init failed"
while read -r word gen; do
	[ "$word" = gen ] && must[$gen]=1
done <"$WORK/init.out"
[ "${#must[@]}" -eq 1 ] || fail "init made ${#must[@]} generations"

for ((i = 1; i <= ITERATIONS; i++)); do
	nloops=1
	((i % 4 == 0)) && nloops=2
	PIDS=()
	for ((k = 0; k < nloops; k++)); do
		"$TOOL" "$STORE" >"$WORK/loop$k.out" 2>"$WORK/loop$k.err" &
		PIDS+=($!)
	done
	((nloops == 2)) && concurrent+=1
	# Let the first loop get past start-up (it prints the generations it
	# opened with), so that the kill lands among rotations, then wait a
	# random 20..419 ms.
	for ((w = 0; w < 500; w++)); do
		[ -s "$WORK/loop0.out" ] && break
		kill -0 "${PIDS[0]}" 2>/dev/null || break
		sleep 0.01
	done
	sleep "$(printf '0.%03d' $((RANDOM % 400 + 20)))"
	for ((k = 0; k < nloops; k++)); do
		p=${PIDS[$k]}
		# A loop that stopped by itself hit an error (e.g. two rotations
		# racing for one generation number): that is a failure.
		kill -0 "$p" 2>/dev/null || { wait "$p" || true; fail "rotate_loop exited early (iteration $i)"; }
		kill -9 "$p"
		wait "$p" 2>/dev/null || true
		total_kills+=1
	done
	PIDS=()

	# What the loops said: "gen N" = durable, "prune N" = may be gone.
	# Generations first, then prunes: a generation is announced before it
	# can be pruned, whichever loop did what.
	for ((k = 0; k < nloops; k++)); do
		while read -r word gen; do
			[[ "$gen" =~ ^[0-9]+$ ]] || continue # a line cut by the kill
			[ "$word" = gen ] && must[$gen]=1
		done <"$WORK/loop$k.out"
	done
	for ((k = 0; k < nloops; k++)); do
		while read -r word gen; do
			[[ "$gen" =~ ^[0-9]+$ ]] || continue
			[ "$word" = prune ] && unset "must[$gen]"
		done <"$WORK/loop$k.out"
	done

	ls -A "$STORE/tls" | grep -q '^\.tmp-' && leftovers+=1

	"$TOOL" --check "$STORE" >"$WORK/check.out" 2>"$WORK/check.err" ||
		fail "store does not load after kill $i: $(cat "$WORK/check.err")"
	read -r label rest <"$WORK/check.out"
	[ "$label" = "gens:" ] || fail "unexpected check output: $(cat "$WORK/check.out")"
	declare -A present=()
	prev=0
	for g in $rest; do
		((g > prev)) || fail "generations not ascending: $rest"
		prev=$g
		present[$g]=1
	done
	for g in "${!must[@]}"; do
		[ -n "${present[$g]:-}" ] || fail "generation $g lost after kill $i (store has: $rest)"
	done
	((prev >= max_seen)) || fail "newest generation went back from $max_seen to $prev"
	max_seen=$prev
	# What this check saw must stay, unless a later loop prunes it.
	for g in $rest; do must[$g]=1; done
	unset present

	# The check held the lock: crash leftovers are gone.
	if ls -A "$STORE/tls" | grep -q '^\.tmp-'; then
		fail "temp files left after a locked load: $(ls -A "$STORE/tls")"
	fi
	for f in "$STORE"/tls/gen-*.pem; do
		[ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f")"
	done
done

[ "$(stat -c %a "$STORE")" = 700 ] || fail "store dir mode $(stat -c %a "$STORE")"
[ "$(stat -c %a "$STORE/tls")" = 700 ] || fail "class dir mode"
# The run must have done real work for the checks to mean anything.
((max_seen >= ITERATIONS / 2)) || fail "only $max_seen generations in $ITERATIONS iterations"
echo "ok: $total_kills kills ($concurrent iterations with two loops), newest generation" \
	"$max_seen, temp leftovers seen after $leftovers kills, $((SECONDS - start)) s"
