# Helpers the benches share; sourced by each, not run.

# now: the time in seconds since the epoch, to the nanosecond.
now() { date +%s.%N; }

# since START: the seconds from START (a `now`) until now.
since() { echo "$(now) - $1" | bc -l; }

# median NUMBER…: the median (of an even count, the mean of the middle two), in plain digits
# (%.12g: byte counts stay integers bc and printf read).
median() {
  printf '%s\n' "$@" | sort -g \
    | awk '{ v[NR] = $1 } END { printf "%.12g\n", (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'
}
