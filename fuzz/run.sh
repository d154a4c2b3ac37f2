#!/usr/bin/env bash
# Runs every built libFuzzer target for SECONDS on a copy of its seed corpus.
#   bash fuzz/run.sh BUILD_DIR SECONDS
# Target BUILD_DIR/fuzz/fuzz_<name> uses seeds fuzz/corpus/<name>/ (and the dictionary
# fuzz/<name>.dict when present). New inputs go to fuzz/corpus-work/<name>/ (ignored by
# git), crash reproducers to fuzz/corpus-work/artifacts/. Exits 1 if any target found
# a crash, leak or timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS}
shopt -s nullglob
targets=("$build"/fuzz/fuzz_*)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz: no targets under $build/fuzz (configure with -DQUARREL_FUZZ=ON and clang)" >&2
    exit 1
fi
work=fuzz/corpus-work
mkdir -p "$work/artifacts"
status=0
for bin in "${targets[@]}"; do
    [[ -x $bin && -f $bin ]] || continue
    name=$(basename "$bin")
    name=${name#fuzz_}
    seeds=fuzz/corpus/$name
    rm -rf "${work:?}/$name"
    mkdir -p "$work/$name"
    if [[ -d $seeds ]]; then cp -r "$seeds"/. "$work/$name"/; fi
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384
          -artifact_prefix="$work/artifacts/${name}-" -print_final_stats=1)
    if [[ -f fuzz/$name.dict ]]; then args+=(-dict="fuzz/$name.dict"); fi
    echo "fuzz: $name for ${seconds}s on $(ls "$work/$name" | wc -l) seeds" >&2
    log=$work/$name.log
    if "$bin" "${args[@]}" "$work/$name" >"$log" 2>&1; then
        echo "fuzz: $name: ok ($(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs," \
             "corpus $(ls "$work/$name" | wc -l) inputs)" >&2
    else
        echo "fuzz: $name: FAILED; the end of $log:" >&2
        tail -n 40 "$log" >&2
        ls "$work"/artifacts/"$name"-* 2>/dev/null >&2 || true
        status=1
    fi
done
exit $status
