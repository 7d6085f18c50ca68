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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import burst, door, drain, e2e, intake, memory
from bench import scale as scale_scenario

RESULTS = Path(__file__).parent / "results.json"
# Runs at another scale or of some scenarios only: not the figures docs/benchmarks.md quotes.
PARTIAL_RESULTS = Path(__file__).parent / "results-partial.json"
SCENARIOS = ("intake", "drain", "e2e", "memory", "burst", "door", "scale")


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
    rows: list[tuple[str, ...]] = [("scenario", "voucher-relay", "baseline", "ratio", "target")]
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
    rows += _e2e_rows(results.get("e2e")) + _memory_rows(results.get("memory"))
    rows += _burst_rows(results.get("burst")) + _door_rows(results.get("door"))
    rows += _scale_rows(results.get("scale"))
    widths = [max(len(str(row[c])) for row in rows) for c in range(len(rows[0]))]
    lines = [" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _e2e_rows(e: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not e:
        return []
    rss = e["peak_rss_mb"]
    return [
        (f"e2e {e['webhooks']:,} webhooks, {e['users']:,} users: to last attribute",
         f"{e['seconds_to_last_attribute']:.1f} s", "", "", ""),
        ("e2e throughput (webhooks to Braze)", f"{e['webhooks_per_s']:.0f}/s",
         f"{e['intake_rps']:.0f}/s intake", "", ""),
        ("e2e Braze requests", str(e["braze_requests"]), str(e["minimum_requests"]),
         f"{e['braze_requests'] / e['minimum_requests']:.2f}", ""),
        ("e2e attributes sent / changed", str(e["attributes_sent"]),
         str(e["attributes_changed"]), f"{e['attributes_sent'] / e['attributes_changed']:.2f}",
         "<= 1.00"),
        ("e2e users with every final value", f"{e['users_correct']:,}", f"{e['users']:,}", "",
         "all"),
        ("e2e peak RSS api / worker / emulator",
         f"{rss['api']:.0f} / {rss['worker']:.0f} / {rss['emulator']:.0f} MB", "", "", ""),
    ]  # fmt: skip


def _memory_rows(m: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not m:
        return []
    small, large = m["small"], m["large"]
    drained = "" if large["drained"] == large["pending"] else f" ({large['drained']:,} drained)"
    return [
        (f"worker peak RSS, {large['pending']:,} pending{drained}",
         f"{large['worker_peak_rss_mb']:.0f} MB",
         f"{small['worker_peak_rss_mb']:.0f} MB at {small['pending']:,}",
         f"{m['rss_ratio']:.2f}", "flat (<= 1.10)"),
        (f"drain of {large['pending']:,} pending", f"{large['deliveries_per_s']:.0f}/s", "", "",
         ""),
    ]  # fmt: skip


def _burst_rows(b: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not b:
        return []
    relay, base = b["relay"], b["baseline"]
    wave = b["wave_seconds_to_braze"]
    return [
        (f"burst intake with the worker delivering ({b['connections']} conn, "
         f"{b['history']:,} settled before)", f"{relay['throughput_rps']:.0f}/s",
         f"{base['throughput_rps']:.0f}/s", f"{b['throughput_ratio']:.2f}", ">= 0.50"),
        (f"burst wave of {b['wave']:,} new users: last webhook to last attribute",
         "-" if wave is None else f"{wave:.1f} s", f"{b['wave_delivered']:,} delivered", "",
         "<= 10 s"),
        (f"burst claims p99 ({b['claims']:,} claims)", f"{b['claim_p99_ms']:.1f} ms", "", "",
         "< 50 ms"),
        ("burst statement timeouts", str(b["statement_timeouts"]), "", "", "0"),
        ("burst webhook delivery latency p99", f"{b['delivery_latency_p99_s']:.1f} s", "", "",
         ""),
    ]  # fmt: skip


def _door_rows(d: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not d:
        return []
    flood, bare, api = d["webhook_flood"], d["webhook_flood_without_budget"], d["api_flood"]
    valid = flood["valid"]
    worst = d["signature_ms_per_mib"]["worst case"]
    return [
        (f"door: API RSS rise, {flood['connections']} slow 1 MiB unsigned webhooks",
         f"+{flood['rss_growth_mb']:.0f} MB", f"+{bare['rss_growth_mb']:.0f} MB without budget",
         "", "< 64 MB"),
        ("door: valid webhooks meanwhile, stored / slowest answer",
         f"{valid['stored']}/{valid['sent']}, {valid['max_ms']:.0f} ms", "", "", "all, < 1 s"),
        (f"door: API RSS rise, {api['connections']} 4 MiB ops bodies without a token",
         f"+{api['rss_growth_mb']:.0f} MB", "", "", "< 64 MB"),
        ("door: bad signature, ms per MiB (worst body shape)",
         f"{worst['c_level']:.1f} ms", f"{worst['byte_by_byte']:.1f} ms byte by byte",
         f"{worst['c_level'] / worst['byte_by_byte']:.2f}", ""),
    ]  # fmt: skip


def _scale_rows(s: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not s:
        return []
    large, small = s["large"], s["small"]
    at = f"{large['events']:,} events, {large['waiting']:,} waiting"
    lists = large["lists_p99_ms"]
    slowest = max(lists, key=lists.get)
    rows: list[tuple[str, ...]] = [
        (
            f"scale Braze claim p99 ({at})",
            f"{large['braze_claim_p99_ms']:.1f} ms",
            f"{small['braze_claim_p99_ms']:.1f} ms at 1/100",
            f"{s['braze_claim_ratio']:.2f}",
            "<= 1.50, < 20 ms",
        ),
        (
            "scale busy-user check and lease p99",
            f"{large['busy_user_check_p99_ms']:.1f} ms",
            f"{small['busy_user_check_p99_ms']:.1f} ms",
            "",
            "< 20 ms",
        ),
        (
            "scale publisher claim p99",
            f"{large['publisher_claim_p99_ms']:.1f} ms",
            f"{small['publisher_claim_p99_ms']:.1f} ms",
            f"{s['publisher_claim_ratio']:.2f}",
            "<= 1.50, < 20 ms",
        ),
        (
            "scale queue metrics scrape p99",
            f"{large['metrics_scrape_p99_ms']:.1f} ms",
            f"{small['metrics_scrape_p99_ms']:.1f} ms",
            "",
            "",
        ),
        (
            f"scale ops lists p99, {len(lists)} filters and orders (slowest: {slowest})",
            f"{min(lists.values()):.1f} to {max(lists.values()):.1f} ms",
            "",
            "",
            "< 100 ms",
        ),
    ]
    for action in ("pause", "resume"):
        change = large["queue_change"][action]
        rows.append((
            f"scale {action} of {change['rows']:,} waiting: answer / done / longest claim",
            f"{change['answered_ms']:.0f} ms / {change['seconds']:.1f} s / "
            f"{change['claim_max_ms']:.0f} ms", f"{change['claims']} claims meanwhile", "",
            "claim < 1 s",
        ))  # fmt: skip
    return rows  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description="voucher-relay benchmarks. BENCH_SCALE (default 1) scales every size and "
        "duration, e.g. BENCH_SCALE=0.1 for a quick check; BENCH_ONLY=e2e,memory runs some."
    )
    parser.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", 1)))
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ",".join(SCENARIOS)),
                        help=f"comma separated, among {', '.join(SCENARIOS)}")  # fmt: skip
    args = parser.parse_args()
    scale, only = args.scale, [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    scenarios: dict[str, Callable[[], Any]] = {
        "intake": lambda: intake.run(seconds=max(2.0, 20 * scale)),
        "drain": lambda: drain.run(users=int(100_000 * scale)),
        "e2e": lambda: e2e.run(users=int(20_000 * scale), webhooks=int(50_000 * scale)),
        "memory": lambda: memory.run(small=int(10_000 * scale), large=int(1_000_000 * scale),
                                     max_seconds=max(60.0, 300 * scale)),
        "burst": lambda: burst.run(seconds=max(2.0, 20 * scale), wave=int(5_000 * scale),
                                   history=int(52_000 * scale), users=int(5_000 * scale)),
        "door": lambda: door.run(seconds=max(4.0, 10 * scale)),
        "scale": lambda: scale_scenario.run(events=int(10_000_000 * scale),
                                            waiting=int(1_000_000 * scale)),
    }  # fmt: skip
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        # Not "scale": that key holds the scale scenario's results.
        "bench_scale": scale,
    }
    for name in SCENARIOS:
        if name in only:
            results[name] = scenarios[name]()
            results[f"{name}_load_average"] = os.getloadavg()[0]
    path = RESULTS if scale == 1 and len(only) == len(SCENARIOS) else PARTIAL_RESULTS
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"voucher-relay benchmarks, {results['date']}, {results['machine']}, scale {scale:g}\n")
    print(table(results))
    print(f"\nfull results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
