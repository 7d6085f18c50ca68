"""`make bench`: run every scenario, print one table, write bench/results.json.

Each scenario measures voucher-relay next to a baseline in the same run on the same machine,
and reports the ratio: absolute numbers depend on the machine, ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import drain, intake

RESULTS = Path(__file__).parent / "results.json"


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB, Python {platform.python_version()}"
    )


def table(results: dict[str, Any]) -> str:
    rows = [("scenario", "voucher-relay", "baseline", "ratio", "target")]
    i = results.get("intake")
    if i:
        relay, base = i["relay"], i["baseline"]
        rows += [
            (f"intake throughput ({i['connections']} conn)", f"{relay['throughput_rps']:.0f}/s",
             f"{base['throughput_rps']:.0f}/s", f"{i['throughput_ratio']:.2f}", ">= 0.50"),
            ("intake latency p50", f"{relay['p50_ms']:.1f} ms", f"{base['p50_ms']:.1f} ms", "", ""),
            ("intake latency p99", f"{relay['p99_ms']:.1f} ms", f"{base['p99_ms']:.1f} ms", "", ""),
            ("intake errors", str(relay["errors"]), str(base["errors"]), "", "0"),
            ("intake server CPU per webhook", f"{relay['server_cpu_ms_per_webhook']:.2f} ms",
             f"{base['server_cpu_ms_per_webhook']:.2f} ms", "", ""),
            ("intake Postgres CPU per webhook", f"{relay['postgres_cpu_ms_per_webhook']:.2f} ms",
             "-", "", ""),
            ("intake peak RSS (server)", f"{relay['peak_rss_mb']:.0f} MB",
             f"{base['peak_rss_mb']:.0f} MB", "", ""),
        ]  # fmt: skip
    d = results.get("drain")
    if d:
        relay, base = d["relay"], d["baseline"]
        rows += [
            (f"drain {d['users']:,} deliveries ({d['concurrency']} conn, {d['latency_ms']} ms)",
             f"{relay['deliveries_per_s']:.0f}/s", f"{base['deliveries_per_s']:.0f}/s",
             f"{d['throughput_ratio']:.2f}", ">= 0.70"),
            ("drain Braze requests", str(relay["braze_requests"]),
             str(relay["minimum_requests"]), "", "= minimum"),
            ("drain worker peak RSS", f"{relay['worker_peak_rss_mb']:.0f} MB", "", "", "< 200 MB"),
            ("drain worker CPU per request", f"{relay['worker_cpu_ms_per_request']:.1f} ms",
             "", "", ""),
            ("drain Postgres CPU per request", f"{relay['postgres_cpu_ms_per_request']:.1f} ms",
             "", "", ""),
        ]  # fmt: skip
    widths = [max(len(str(row[c])) for row in rows) for c in range(len(rows[0]))]
    lines = [" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="voucher-relay benchmarks")
    parser.add_argument("--seconds", type=float, default=20, help="intake load duration per run")
    parser.add_argument("--drain-users", type=int, default=100_000, help="deliveries to drain")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "intake": intake.run(seconds=args.seconds),
        "drain": drain.run(users=args.drain_users),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"voucher-relay benchmarks, {results['date']}, {results['machine']}\n")
    print(table(results))
    print(f"\nfull results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
