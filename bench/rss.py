"""Runs a command and samples its resident memory (VmRSS) until it exits.

    python3 bench/rss.py --name NAME [--every 0.5] -- CMD ARGS...

Prints one JSON line: {"name", "seconds", "rc", "peak_rss_mb" (the kernel's
VmHWM read just before exit, else the largest sample), "deciles" (RSS at
10%, 20%, ... 100% of the run time) and "samples" (every sample as
[seconds, MB])}. The command's own output goes to stderr.
"""

import argparse
import json
import subprocess
import sys
import time


def status_mb(pid: int, field: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        sys.exit("bench/rss.py: no command given")
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=sys.stderr)
    samples: list[list[float]] = []
    hwm = 0.0
    while p.poll() is None:
        rss = status_mb(p.pid, "VmRSS")
        h = status_mb(p.pid, "VmHWM")
        if rss is not None:
            samples.append([round(time.monotonic() - start, 2), round(rss, 1)])
        if h is not None:
            hwm = max(hwm, h)
        time.sleep(a.every)
    secs = time.monotonic() - start
    peak = max([hwm] + [s[1] for s in samples])
    deciles = []
    for d in range(1, 11):
        t = secs * d / 10
        before = [s[1] for s in samples if s[0] <= t]
        deciles.append(before[-1] if before else None)
    print(json.dumps({"name": a.name, "cmd": cmd, "seconds": round(secs, 1), "rc": p.returncode,
                      "peak_rss_mb": round(peak, 1), "deciles": deciles, "samples": samples}))


if __name__ == "__main__":
    main()
