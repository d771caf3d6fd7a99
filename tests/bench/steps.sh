# Stage timing for tests/bench/build-times.sh, sourced by www/build.sh and tests/setup.sh only
# when HEADTUNE_TIMES names a file. Each stage appends one line:
#   script <TAB> stage <TAB> wall clock (s) <TAB> "user sys" CPU seconds of the script's finished
#   children so far
# and the script's exit appends an `end` line, so every stage has a start and an end.

# Bash's `times` prints "0m1.500s 0m0.250s"; this turns one such figure into seconds.
_secs() { local m=${1%%m*} s=${1#*m}; awk -v m="$m" -v s="${s%s}" 'BEGIN { print m * 60 + s }'; }

record_step() {
  local cu cs
  # `times` must run in this shell (a subshell would report its own, empty, children).
  times > "$HEADTUNE_TIMES.$$"
  { read -r _ _; read -r cu cs; } < "$HEADTUNE_TIMES.$$"
  rm -f "$HEADTUNE_TIMES.$$"
  printf '%s\t%s\t%s\t%s %s\n' "$0" "$1" "$(date +%s.%N)" "$(_secs "$cu")" "$(_secs "$cs")" >> "$HEADTUNE_TIMES"
}

trap 'record_step end' EXIT
