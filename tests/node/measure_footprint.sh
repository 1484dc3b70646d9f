#!/usr/bin/env bash
# Footprint of `serve node-agent`: RSS and CPU at idle and under a capacity-change storm.
set -euo pipefail
BIN=${BIN:-build/src/tdxvirt}  # usage: [BIN=...] [POLL=ms] [DUR=s] tests/node/measure_footprint.sh
POLL=${POLL:-1000}
W=$(mktemp -d /tmp/nodefp.XXXXXX)
mkdir -p "$W/dp" "$W/nfd"
$BIN node sim-host --root "$W/host" --keys 64
$BIN node sim-kubelet --dir "$W/dp" > "$W/kubelet.out" &
KPID=$!
sleep 0.5
$BIN serve node-agent --kubevirt-version 1.8 --host-root "$W/host" --device-plugin-dir "$W/dp" --nfd-dir "$W/nfd" \
  --poll-interval "$POLL" --listen 127.0.0.1:0 2> "$W/agent.err" &
APID=$!
sleep 3
TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$APID/stat; }
rss() { awk '/VmRSS/{print $2}' /proc/$APID/status; }
hwm() { awk '/VmHWM/{print $2}' /proc/$APID/status; }
thr() { awk '/Threads/{print $2}' /proc/$APID/status; }
DUR=${DUR:-30}
c0=$(cpu); t0=$(date +%s.%N)
sleep "$DUR"
c1=$(cpu); t1=$(date +%s.%N)
echo "idle: rss_kib=$(rss) threads=$(thr) cpu_pct=$(echo "scale=4; ($c1-$c0)/$TCK/($t1-$t0)*100" | bc)"
# Storm: the misc files rewritten (atomic rename) as fast as python can, alternating usage.
python3 - "$W/host/sys/fs/cgroup" "$DUR" <<'PY' &
import os, sys, time
d, dur = sys.argv[1], float(sys.argv[2])
end = time.time() + dur; i = 0
while time.time() < end:
    i += 1
    for name, text in (("misc.capacity", "tdx %d\n" % (64 + i % 2)), ("misc.current", "tdx %d\n" % (i % 7))):
        tmp = os.path.join(d, "." + name + ".tmp")
        with open(tmp, "w") as f: f.write(text)
        os.rename(tmp, os.path.join(d, name))
    time.sleep(0.001)
print("storm writes", i)
PY
SPID=$!
c0=$(cpu); t0=$(date +%s.%N)
wait $SPID
c1=$(cpu); t1=$(date +%s.%N)
echo "storm: rss_kib=$(rss) hwm_kib=$(hwm) threads=$(thr) cpu_pct=$(echo "scale=4; ($c1-$c0)/$TCK/($t1-$t0)*100" | bc) kubelet_updates=$(wc -l < "$W/kubelet.out")"
grep -c '"event":"devices"' "$W/agent.err" | sed 's/^/device_list_changes=/'
kill -TERM $APID; wait $APID; echo "agent exit=$?"
ls "$W/dp"
kill -TERM $KPID; wait $KPID || true
rm -rf "$W"
