# Sourced by the bench scripts: `measure LABEL CMD...` runs CMD under
# /usr/bin/time -v with its output in $out/LABEL.out, prints its wall time
# and peak RSS, and keeps the wall time in $out/LABEL.wall.
measure() {
    local label=$1; shift
    /usr/bin/time -v "$@" > "$out/$label.out" 2> "$out/$label.time"
    local wall rss
    wall=$(grep "Elapsed (wall clock)" "$out/$label.time" | awk '{print $NF}')
    rss=$(grep "Maximum resident set size" "$out/$label.time" | awk '{print $NF}')
    printf '%-28s wall %-9s peak RSS %6d MiB\n' "$label" "$wall" "$((rss / 1024))"
    echo "$wall" > "$out/$label.wall"
}
