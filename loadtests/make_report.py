#!/usr/bin/env python3
"""Writes the Markdown load-test report from the results of loadtests/run.

    loadtests/make_report.py RESULTS_DIR > loadtests/reports/<date>.md

RESULTS_DIR holds <phase>.json (tappa-loadgen --json), <phase>.cpu.json
(server and Redis CPU seconds during the phase), redis-benchmark.txt,
rss_kb.txt and machine.txt (key=value lines), as loadtests/run leaves them.
Pass or fail is judged on ratios to the floors measured in the same run
(issue 4's targets); absolute figures are reported beside them.
"""
import datetime
import json
import os
import re
import sys

# (phase, description) in report order.
PHASES = [
    ("empty", "floor: empty RPC (grpc.health.v1.Health/Check), closed loop"),
    ("nba", "NextBestAction, web placements, closed loop (max)"),
    ("track", "TrackEvent, closed loop (max)"),
    ("web", "web mix 80% NBA / 18% TrackEvent / 2% ReportOutcome, closed loop (max)"),
    ("ingest", "TrackEvents batches of 100, closed loop (8 in flight)"),
    ("campaign", "DecideBatch, one stream, email placements (outbound campaign): decisions/s"),
    # Open loop below: labelled "<description>, open loop at <rate> offered".
    ("open-empty-low", "floor: empty RPC"),
    ("open-nba-low", "NextBestAction"),
    ("open-empty", "floor: empty RPC"),
    ("open-nba", "NextBestAction"),
    ("open", "web mix"),
    ("overload", "web mix, open loop at twice its maximum"),
    ("recovery", "web mix, open loop right after the overload"),
    ("campaign-1m", "DecideBatch, a stream of requests drained to the last answer"),
]

# Phases whose shed calls and degraded answers are the point, not a failure.
SHEDDING_PHASES = ("overload",)


def load(results, name):
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_text(results, name):
    path = os.path.join(results, name)
    return open(path).read().strip() if os.path.exists(path) else ""


def ms(us):
    return f"{us / 1000:.2f}"


def rss_text(c):
    """The server's RSS after a phase, and its peak during it when higher."""
    if not c:
        return "0"
    after = c["rss_kb"] / 1024
    peak = c.get("peak_rss_kb", 0) / 1024
    return f"{after:.0f} (peak {peak:.0f})" if peak > after + 0.5 else f"{after:.0f}"


def main():
    results = sys.argv[1]
    machine = dict(line.split("=", 1) for line in read_text(results, "machine.txt").splitlines()
                   if "=" in line)
    data = {name: load(results, f"{name}.json") for name, _ in PHASES}
    cpu = {name: load(results, f"{name}.cpu.json") for name, _ in PHASES}
    redis_line = read_text(results, "redis-benchmark.txt")
    m = re.search(r"GET:\s*([\d.]+) requests per second", redis_line)
    redis_get = float(m.group(1)) if m else None
    rss_kb = int(read_text(results, "rss_kb.txt") or 0)
    redis_mem = int(read_text(results, "redis_used_memory.txt") or 0)
    redis_keys = read_text(results, "redis_keys.txt")
    empty = data["empty"]["total"]["throughput_per_s"] if data["empty"] else None

    out = []
    w = out.append
    w(f"# Load test report {datetime.date.today().isoformat()}")
    w("")
    w("Produced by `loadtests/run` (see [loadtests/README.md](../README.md) for what each "
      "figure means). Server, Redis and load generator all ran on this machine; every "
      "throughput is also given as a ratio to the floors measured **in the same run**, "
      "and pass/fail is judged on those ratios.")
    w("")
    w("## Machine")
    w("")
    w(f"- CPUs: {machine.get('nproc', '?')} x {machine.get('cpu', '?')}")
    w(f"- memory: {machine.get('memory', '?')}; kernel: {machine.get('kernel', '?')}")
    w(f"- {machine.get('redis', '?')}")
    w(f"- build: {machine.get('build_type', '?')}, commit {machine.get('commit', '?')}")
    w(f"- load average before the run: {machine.get('load_before', '?')}; "
      f"run time {machine.get('elapsed_s', '?')} s")
    w(f"- ruleset `{machine.get('rules', '?')}`, {machine.get('contacts', '?')} contacts "
      f"(Zipf 0.99, preloaded), {machine.get('connections', '?')} gRPC connections, "
      f"closed loop {machine.get('concurrency', '?')} calls in flight, each phase "
      f"{machine.get('warmup', '?')} warm-up + {machine.get('duration', '?')} measured"
      + (f"; server flags `{machine['server_flags']}`" if machine.get("server_flags") else ""))
    w("")
    w("## Floors (same run)")
    w("")
    w("| floor | throughput |")
    w("|---|---:|")
    if empty is not None:
        w(f"| empty gRPC call (Health/Check), closed loop {machine.get('concurrency', '?')} "
          f"in flight | {empty:,.0f} calls/s |")
    if redis_get is not None:
        w(f"| `redis-benchmark -t get -c 32 -n 200000` | {redis_get:,.0f} GET/s |")
    w("")
    floors = [data[n] for n in ("open-empty-low", "open-empty") if data.get(n)]
    if floors:
        w("Latency floors (same run): the empty RPC in open loop at the rates the "
          "decision path is measured at; what this machine's thread wake-ups and "
          "scheduling cost a call that does no work.")
        w("")
        w("| floor | p50 | p99 | p99.9 | max | client send lag p99 |")
        w("|---|---:|---:|---:|---:|---:|")
        for f in floors:
            lat = f["total"]["latency"]
            w(f"| empty RPC, open loop at {f['offered_rate']:,.0f} calls/s | "
              f"{ms(lat['p50_us'])} | {ms(lat['p99_us'])} | {ms(lat['p99_9_us'])} | "
              f"{ms(lat['max_us'])} | {ms(f.get('send_lag', {}).get('p99_us', 0))} |")
        w("")
    w("## Results")
    w("")
    w("Latencies in milliseconds; open loop latencies are measured from each call's "
      "scheduled send time (coordinated omission corrected). *CPU µs/call* is the CPU time "
      "(user + system) per call of the server / Redis / the load generator during the "
      "phase: on 2 shared cores, all three compete.")
    w("")
    w("| phase | calls/s | / empty RPC | / Redis GET | p50 | p90 | p99 | p99.9 | max | "
      "errors | CPU µs/call | RSS MB |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    total_errors = 0
    total_degraded = 0
    for name, desc in PHASES:
        d = data[name]
        if d is None:
            continue
        t = d["total"]
        lat = t["latency"]
        rate = t["throughput_per_s"]
        errs = t["error_count"] + t["item_errors"]
        if name != "empty" and name not in SHEDDING_PHASES:
            total_errors += errs
            total_degraded += t["degraded"]
        err_text = str(errs)
        if t["errors"]:
            err_text += " (" + ", ".join(f"{k} {v}" for k, v in t["errors"].items()) + ")"
        if t["degraded"]:
            err_text += f" + {t['degraded']} degraded"
        label = desc
        if name in ("overload", "recovery"):
            label = f"{desc}: {d['offered_rate']:,.0f} calls/s offered"
        elif d.get("mode") == "open":
            label = f"{desc}, open loop at {d['offered_rate']:,.0f} calls/s offered"
        if name == "campaign-1m":
            label = (f"DecideBatch, one stream of {d.get('requests', 0):,} requests drained "
                     f"to the last answer in {d['duration_s']:.1f} s: decisions/s")
        if name == "ingest":
            label += f": {t['items_per_s']:,.0f} events/s"
        c = cpu.get(name)
        calls = t["ok"] + t["error_count"]
        cpu_text = ""
        if c and calls:
            # The CPU was measured over warm-up + measured time + drain; the
            # calls over the measured time: scale by the durations.
            span = d["duration_s"] + d["warmup_s"]
            if name == "campaign-1m":
                span = d["duration_s"]
            per_call = lambda s: s / (calls * span / d["duration_s"]) * 1e6
            cpu_text = (f"{per_call(c['server_cpu_s']):.0f} / {per_call(c['redis_cpu_s']):.0f}"
                        f" / {per_call(d.get('client_cpu_s', 0)):.0f}")
        w(f"| {label} | {rate:,.0f} | {rate / empty:.2f} | "
          f"{rate / redis_get:.2f} | {ms(lat['p50_us'])} | {ms(lat['p90_us'])} | "
          f"{ms(lat['p99_us'])} | {ms(lat['p99_9_us'])} | {ms(lat['max_us'])} | {err_text} | "
          f"{cpu_text} | {rss_text(c)} |"
          if empty and redis_get else f"| {label} | {rate:,.0f} | | | | | | | | | | |")
    over, rec = data.get("overload"), data.get("recovery")
    if over and rec:
        t = over["total"]
        served = t["throughput_per_s"]
        shed = t["errors"].get("RESOURCE_EXHAUSTED", 0)
        late = t["errors"].get("DEADLINE_EXCEEDED", 0)
        acc = t.get("accepted_latency", {})
        racc = rec["total"]["latency"]
        w("")
        codes = load(results, "overload.codes.json") or {}
        server_side = ", ".join(f"{k} {v:,}" for k, v in sorted(codes.items())) or "none"
        w(f"Overload: offered {over['offered_rate']:,.0f} calls/s (twice the web mix maximum), "
          f"the server answered {served:,.0f} calls/s: {shed:,} writes shed at once with "
          f"RESOURCE_EXHAUSTED, {t['degraded']:,} decisions answered degraded (the placement's "
          f"fallback), {late:,} calls ran out their deadline; the calls served in full had p50 "
          f"{ms(acc.get('p50_us', 0))} ms, p99 {ms(acc.get('p99_us', 0))} ms, max "
          f"{ms(acc.get('max_us', 0))} ms. Right after, at {rec['offered_rate']:,.0f} calls/s "
          f"(no warm-up): p99 {ms(racc['p99_us'])} ms, "
          f"{rec['total']['error_count']} errors, {rec['total']['degraded']} degraded. "
          f"What the server itself answered during the overload phase (warm-up included, "
          f"by status): {server_side}; a call the client could not send before its "
          f"deadline never reaches the server.")
    lags = []
    for name, _ in PHASES:
        if data[name] and data[name].get("mode") == "open":
            lag = data[name].get("send_lag", {})
            lags.append(f"`{name}` {ms(lag.get('p99_us', 0))} / {ms(lag.get('max_us', 0))}")
    if lags:
        w("")
        w("Open loop: how late the load generator sent its calls, p99 / max ms: "
          + ", ".join(lags) + " (included in the latencies above: a client starved of CPU "
          "charges its own lateness to the server, never hides it).")
    w("")
    w(f"Server resident memory after the runs: **{rss_kb / 1024:.1f} MB** (VmRSS; the RSS "
      "column gives it after each phase). "
      f"Redis: {redis_mem / 1048576:.1f} MB used, {redis_keys} keys.")
    w("")

    # Targets of issue 4.
    w("## Targets")
    w("")
    w("| target | measured | result |")
    w("|---|---|---|")

    def verdict(ok):
        return "**pass**" if ok else "**FAIL**"

    if empty and data["nba"]:
        r = data["nba"]["total"]["throughput_per_s"] / empty
        w(f"| NextBestAction max >= 50% of empty RPC | {r:.0%} | {verdict(r >= 0.5)} |")
    if empty and data["track"]:
        r = data["track"]["total"]["throughput_per_s"] / empty
        w(f"| TrackEvent max >= 40% of empty RPC | {r:.0%} | {verdict(r >= 0.4)} |")
    frac = float(machine.get("open_fraction", "0.5"))
    floor = data.get("open-empty")
    floor_lat = floor["total"]["latency"] if floor else None
    for name, what in (("open", "web mix"), ("open-nba", "NextBestAction only (informative)")):
        if not data[name]:
            continue
        lat = data[name]["total"]["latency"]
        for key, label, limit in (("p99_us", "p99 < 2 ms", 2000),
                                  ("p99_9_us", "p99.9 < 5 ms", 5000)):
            beside = (f" (empty RPC at the same rate: {ms(floor_lat[key])} ms)"
                      if floor_lat else "")
            w(f"| {what}, open loop at {frac:.0%} of NBA max: {label} | "
              f"{ms(lat[key])} ms{beside} | {verdict(lat[key] < limit)} |")
    for name in ("campaign", "campaign-1m"):
        if data[name]:
            r = data[name]["total"]["throughput_per_s"]
            w(f"| DecideBatch >= 20,000 decisions/s, 1,000-action ruleset, 100,000 contacts "
              f"(issue 6), `{name}` | {r:,.0f}/s | {verdict(r >= 20000)} |")
    if over and rec:
        late = over["total"]["errors"].get("DEADLINE_EXCEEDED", 0)
        w(f"| overload at 2x: excess shed at once, no call left to run out its deadline | "
          f"{late} DEADLINE_EXCEEDED | {verdict(late == 0)} |")
        rt = rec["total"]
        w(f"| recovery right after: no errors, no degraded answers | {rt['error_count']} errors, "
          f"{rt['degraded']} degraded | {verdict(rt['error_count'] == 0 and rt['degraded'] == 0)} |")
    w(f"| zero errors (non-OK calls, refused batch items, degraded answers; "
      f"overload phase excepted) | "
      f"{total_errors} errors, {total_degraded} degraded | "
      f"{verdict(total_errors == 0 and total_degraded == 0)} |")
    peak_kb = max([rss_kb] + [c.get("peak_rss_kb", 0) for c in cpu.values() if c])
    w(f"| server RSS < 150 MB with `{machine.get('rules', '?')}` (highest sample of any phase) | "
      f"{peak_kb / 1024:.1f} MB | {verdict(0 < peak_kb < 150 * 1024)} |")
    w("")
    w("## Raw output")
    w("")
    w("```")
    w(read_text(results, "preload.txt"))
    for name, _ in PHASES:
        text = read_text(results, f"{name}.txt")
        if text:
            w(text)
        if name == "empty" and redis_line:
            w("redis-benchmark: " + redis_line)
    w("```")
    print("\n".join(out))


if __name__ == "__main__":
    main()
