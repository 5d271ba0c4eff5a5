#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for a given time, then prints
# a table of executions, corpus size and findings per target.
#
#   fuzz/run.sh [-t SECONDS] [-j N] [TARGET...]
#
#   -t SECONDS  fuzzing time per target (default 60)
#   -j N        targets run at once (default 1)
#   TARGET      fuzz_frontend fuzz_blockmask fuzz_npy fuzz_npy_stream
#               fuzz_dense fuzz_safetensors fuzz_jit_cache (default: all)
#
# Everything it writes is under fuzz-out/ (gitignored): the growing corpus
# (fuzz-out/corpus/TARGET, seeded from fuzz/corpus/TARGET), the findings
# (fuzz-out/findings/TARGET/crash-*, timeout-*, leak-*, oom-*), logs and
# the table (fuzz-out/summary.md; "findings" counts this run's new ones).
# A run goes on after a finding until its time is up.
# Exit status: 0 no findings, 1 some finding, 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."
all=(fuzz_frontend fuzz_blockmask fuzz_npy fuzz_npy_stream fuzz_dense fuzz_safetensors fuzz_jit_cache)
secs=60
par=1
while getopts "t:j:h" o; do
  case $o in
    t) secs=$OPTARG ;;
    j) par=$OPTARG ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz/run.sh: unknown target '$t' (have: ${all[*]})" >&2; exit 2; }
done

command -v clang >/dev/null 2>&1 || {
  echo "fuzz/run.sh: libFuzzer needs clang: apt-get install clang libclang-rt-14-dev" >&2
  exit 2
}
build=build-fuzz
out=fuzz-out
if [ ! -f $build/CMakeCache.txt ]; then
  CC=clang cmake -S . -B $build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFM_FUZZ=ON -DFM_SANITIZE=ON \
    -DFM_BUILD_TESTS=OFF -DFM_BUILD_BENCH=OFF >/dev/null
fi
cmake --build $build -j"$(nproc)" --target "${targets[@]}" >/dev/null
mkdir -p $out/logs

# Runs one target for $secs seconds, restarting after each finding.
run_one() {
  local t=$1 bin=$build/fuzz/$1 corpus=$out/corpus/$1 finds=$out/findings/$1
  local log=$out/logs/$1.log dict=()
  mkdir -p "$corpus" "$finds"
  case $t in fuzz_frontend|fuzz_blockmask) dict=(-dict=fuzz/mask.dict) ;; esac
  : >"$log"
  local start end left execs=0 n=0
  local before first
  before=$(find "$finds" -type f | wc -l)
  first=$before
  start=$(date +%s)
  end=$((start + secs))
  while left=$((end - $(date +%s))); [ "$left" -gt 0 ]; do
    # -timeout: an input running 10 s is a hang; -rss_limit_mb: a leak or
    # an allocation the limits should have refused.
    "$bin" -max_total_time="$left" -timeout=10 -rss_limit_mb=2560 -max_len=8192 \
      -print_final_stats=1 -artifact_prefix="$finds/" "${dict[@]}" \
      "$corpus" "fuzz/corpus/$t" >>"$log" 2>&1 || true
    # Executions: the last status line (or final stats) of each fuzzer run.
    execs=$(awk '/^#[0-9]+\t/ {c = substr($1, 2) + 0} /^stat::number_of_executed_units/ {c = $2}
                 /^== restarting/ {t += c; c = 0} END {print t + c}' "$log")
    # A run that stopped without a new finding is done (out of time).
    n=$(find "$finds" -type f | wc -l)
    [ "$n" -gt "$before" ] || break
    before=$n
    echo "== restarting after a finding" >>"$log"
  done
  local took=$(($(date +%s) - start))
  local files findings
  files=$(find "$corpus" -type f | wc -l)
  findings=$(( $(find "$finds" -type f | wc -l) - first ))
  echo "$t $took $execs $files $findings" >"$out/logs/$t.result"
}

pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n || true; done
done
wait

status=0
{
  echo "| target | seconds | executions | exec/s | corpus files | findings |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for t in "${targets[@]}"; do
    read -r name took execs files findings <"$out/logs/$t.result"
    rate=$(( took > 0 ? execs / took : 0 ))
    echo "| $name | $took | $execs | $rate | $files | $findings |"
    [ "$findings" -eq 0 ] || status=1
  done
} | tee $out/summary.md
[ $status -eq 0 ] || echo "findings: ls $out/findings/*/" >&2
exit $status
