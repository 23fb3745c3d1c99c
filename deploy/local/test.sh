#!/usr/bin/env bash
# baoxue's whole test run (CI runs it through .ci/run):
#   1. local infrastructure up (PostgreSQL, Redis, Kafka on loopback: deploy/local/bx-infra)
#   2. build/       RelWithDebInfo build, bxctl migrate + topics create, every ctest test
#   3. build-asan/  clang with ASan+UBSan, the unit and integration labels
#   4. build-fuzz/  clang libFuzzer targets, the fuzz label
# Every phase runs even if an earlier build failed; the exit status is non-zero if anything failed.
#
# The infrastructure: when the run ends, however it ends, it stops the components that it started
# itself (bx-infra down NAME), so another clone's run later finds the ports free. A component that
# was already alive when the run began (a developer's `bx-infra up`, another run's) keeps running.
# So to share one infrastructure between runs at the same time, start it first (bx-infra up) and
# every run leaves it alone; a second clone reuses it with BX_RUN_DIR=<the first clone>/.run, or
# runs its own on other ports (BX_PG_PORT, BX_REDIS_PORT, BX_KAFKA_PORT, BX_KAFKA_CONTROLLER_PORT).
# BX_TEST_KEEP_INFRA=1 leaves running what the run started.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
RUN="${BX_RUN_DIR:-$REPO/.run}"
JOBS="${BX_TEST_JOBS:-2}"
TIMEOUT="${BX_TEST_TIMEOUT:-300}"   # seconds per ctest test
LOGS="$RUN/log/test"

STEPS=()
RESULTS=()
FAILED=0
TOTAL_PASS=0
TOTAL_FAIL=0
T_START=$SECONDS

banner() { printf '\n==> %s\n' "$*"; }
record() { STEPS+=("$1"); RESULTS+=("$2"); }

# step NAME FUNCTION [ARGS...]: runs it, records ok/FAILED with its duration.
step() {
    local name="$1" t0=$SECONDS rc=0
    shift
    banner "$name"
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        record "$name" "ok ($((SECONDS - t0)) s)"
    else
        record "$name" "FAILED (exit $rc, $((SECONDS - t0)) s)"
        FAILED=1
    fi
    return "$rc"
}

# run_ctest NAME BUILD_DIR [CTEST ARGS...]: ctest with output kept, counts added to the totals.
run_ctest() {
    local name="$1" dir="$2" log rc=0 line total nfail
    shift 2
    mkdir -p "$LOGS"
    log="$LOGS/ctest-$(basename "$dir").log"
    set +e
    ctest --test-dir "$dir" --output-on-failure -j"$JOBS" --timeout "$TIMEOUT" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)"
    if [ -n "$line" ]; then
        total="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")"
        nfail="$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")"
        TOTAL_PASS=$((TOTAL_PASS + total - nfail))
        TOTAL_FAIL=$((TOTAL_FAIL + nfail))
        printf '%s: %d passed, %d failed\n' "$name" "$((total - nfail))" "$nfail"
    else
        printf '%s: no tests matched\n' "$name"
    fi
    return "$rc"
}

bxctl_prepare() {
    local bxctl="$1"
    if [ -x "$bxctl" ]; then
        "$bxctl" migrate && "$bxctl" topics create
    else
        echo "($bxctl not built yet: no migrations or topics)"
    fi
}

# ---------------------------------------------------------------------------------------------
INFRA=deploy/local/bx-infra
# The components alive before the run, as " postgres redis " (never stopped by it).
INFRA_BEFORE=" $(bash "$INFRA" running 2>/dev/null | tr '\n' ' ' || true) "

# On exit: stops what is alive now and was not before, and keeps the run's exit status.
stop_started_infra() {
    local rc=$? name stop=()
    trap - EXIT
    if [ "${BX_TEST_KEEP_INFRA:-0}" != 1 ]; then
        for name in $(bash "$INFRA" running 2>/dev/null || true); do
            [[ "$INFRA_BEFORE" == *" $name "* ]] || stop+=("$name")
        done
        if [ "${#stop[@]}" -gt 0 ]; then
            banner "infra down (started by this run): ${stop[*]}"
            bash "$INFRA" down "${stop[@]}" || echo "test.sh: could not stop ${stop[*]}" >&2
        fi
    fi
    exit "$rc"
}
trap stop_started_infra EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

infra_up() { bash "$INFRA" up; }

if ! step "infra up" infra_up; then
    echo "test.sh: the local infrastructure did not start; nothing else can run" >&2
else
    # shellcheck disable=SC1091
    source "$RUN/env"
    export BX_PG_URL BX_REDIS_URL BX_KAFKA_BROKERS BX_RUN_DIR

    # 2. main build
    build_main() {
        cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build
    }
    if step "build (RelWithDebInfo, build/)" build_main; then
        if step "bxctl migrate + topics create" bxctl_prepare build/tools/bxctl/bxctl; then
            step "ctest build/ (all labels)" run_ctest "build" build || true
        fi
    fi

    # 3. sanitizers
    build_asan() {
        cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DBX_SANITIZE=ON \
            && cmake --build build-asan
    }
    if step "build (clang ASan+UBSan, build-asan/)" build_asan; then
        asan_tests() {
            ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                run_ctest "build-asan" build-asan -L 'unit|integration'
        }
        step "ctest build-asan/ (unit|integration)" asan_tests || true
    fi

    # 4. fuzz targets
    build_fuzz() {
        cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBX_FUZZ=ON \
            && cmake --build build-fuzz
    }
    if step "build (clang libFuzzer, build-fuzz/)" build_fuzz; then
        step "ctest build-fuzz/ (fuzz)" run_ctest "build-fuzz" build-fuzz -L fuzz || true
    fi
fi

# ---------------------------------------------------------------------------------------------
echo
echo "================ baoxue test summary ($((SECONDS - T_START)) s) ================"
for i in "${!STEPS[@]}"; do
    printf '  %-42s %s\n' "${STEPS[$i]}" "${RESULTS[$i]}"
done
if [ "$FAILED" -eq 0 ] && [ "$TOTAL_FAIL" -eq 0 ]; then
    echo "RESULT: PASS"
else
    echo "RESULT: FAIL (logs: $LOGS/)"
fi
echo "tests: $TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$FAILED" -eq 0 ] && [ "$TOTAL_FAIL" -eq 0 ]
