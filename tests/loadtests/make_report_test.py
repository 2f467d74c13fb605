#!/usr/bin/env python3
"""Tests of loadtests/make_report.py: the report's ratios, latency floors and
target verdicts, from a results directory written here as loadtests/run
leaves it. The report judges issue 4's targets, so its arithmetic and its
pass/fail lines are tested like any other code.

    python3 tests/loadtests/make_report_test.py   (ctest: MakeReportTest)
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKE_REPORT = os.path.join(ROOT, "loadtests", "make_report.py")


def latency(p50, p99, p999):
    """A latency summary in microseconds, p90 and max derived."""
    return {"p50_us": p50, "p90_us": (p50 + p99) / 2, "p99_us": p99,
            "p99_9_us": p999, "max_us": p999 * 2}


def phase(rate, lat, offered=0, errors=None, degraded=0):
    errors = errors or {}
    calls = int(rate * 12)
    return {
        "total": {
            "throughput_per_s": rate, "latency": lat, "ok": calls,
            "error_count": sum(errors.values()), "item_errors": 0,
            "errors": errors, "degraded": degraded, "items_per_s": rate * 100,
            "accepted_latency": lat,
        },
        "mode": "open" if offered else "closed",
        "offered_rate": offered, "duration_s": 12.0, "warmup_s": 3.0,
        "client_cpu_s": 1.0, "send_lag": {"p99_us": 500, "max_us": 900},
    }


class MakeReportTest(unittest.TestCase):

    def write_results(self, directory, phases):
        for name, data in phases.items():
            with open(os.path.join(directory, f"{name}.json"), "w") as f:
                json.dump(data, f)
            with open(os.path.join(directory, f"{name}.cpu.json"), "w") as f:
                json.dump({"server_cpu_s": 1.5, "redis_cpu_s": 0.3,
                           "rss_kb": 100 * 1024, "peak_rss_kb": 110 * 1024}, f)
        files = {
            "machine.txt": "nproc=2\ncpu=test\nopen_fraction=0.5\n"
                           "rules=rules/examples/generated_1000.yaml\n",
            "redis-benchmark.txt": "GET: 40000.00 requests per second, p50=0.3 msec",
            "rss_kb.txt": str(105 * 1024),
            "redis_used_memory.txt": "1048576",
            "redis_keys.txt": "10",
        }
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)

    def report(self, phases):
        with tempfile.TemporaryDirectory() as directory:
            self.write_results(directory, phases)
            return subprocess.run([sys.executable, MAKE_REPORT, directory],
                                  check=True, capture_output=True, text=True).stdout

    def base_phases(self):
        fast = latency(200, 1500, 4000)
        return {
            "empty": phase(40000, latency(1000, 3000, 5000)),
            "nba": phase(20400, latency(2000, 5000, 8000)),
            "track": phase(15600, latency(3000, 9000, 12000)),
            "web": phase(11000, latency(3000, 9000, 12000)),
            "open-empty-low": phase(3000, latency(150, 900, 1800), offered=3000),
            "open-nba-low": phase(3000, fast, offered=3000),
            "open-empty": phase(12000, latency(120, 1200, 2500), offered=12000),
            "open-nba": phase(12000, fast, offered=12000),
            "open": phase(12000, fast, offered=12000),
        }

    def target_line(self, report, starts):
        lines = [l for l in report.splitlines() if l.startswith("| " + starts)]
        self.assertEqual(len(lines), 1, f"{starts!r} in:\n{report}")
        return lines[0]

    def assert_web_latency(self, report, target, measured, verdict):
        """The web mix's open-loop `target` ("p99 <" or "p99.9") line reads
        `measured` (the figure and the floor beside it) and `verdict`."""
        line = self.target_line(report, f"web mix, open loop at 50% of NBA max: {target}")
        self.assertIn(measured, line)
        self.assertIn(verdict, line)

    def test_throughput_ratios_are_judged_against_the_empty_rpc(self):
        report = self.report(self.base_phases())
        # Just either side: 20,400 / 40,000 = 51% passes 50%; 15,600 / 40,000
        # = 39% fails 40%.
        nba = self.target_line(report, "NextBestAction max >= 50%")
        self.assertIn("51%", nba)
        self.assertIn("**pass**", nba)
        track = self.target_line(report, "TrackEvent max >= 40%")
        self.assertIn("39%", track)
        self.assertIn("**FAIL**", track)
        # The results table gives the ratio to both floors.
        row = self.target_line(report, "NextBestAction, web placements")
        self.assertIn("| 20,400 | 0.51 | 0.51 |", row)

    def test_latency_targets_stand_beside_the_floor_at_the_same_rate(self):
        report = self.report(self.base_phases())
        self.assertIn("| empty RPC, open loop at 3,000 calls/s | 0.15 | 0.90 | 1.80 |",
                      report)
        self.assertIn("| empty RPC, open loop at 12,000 calls/s | 0.12 | 1.20 | 2.50 |",
                      report)
        self.assert_web_latency(report, "p99 <",
                                "1.50 ms (empty RPC at the same rate: 1.20 ms)", "**pass**")
        self.assert_web_latency(report, "p99.9",
                                "4.00 ms (empty RPC at the same rate: 2.50 ms)", "**pass**")

    def test_a_slow_open_loop_fails_even_when_its_floor_is_slow(self):
        phases = self.base_phases()
        phases["open-empty"] = phase(12000, latency(500, 6000, 11000), offered=12000)
        # Just over both limits (2 ms, 5 ms): the targets are absolute.
        phases["open"] = phase(12000, latency(900, 2100, 5100), offered=12000)
        report = self.report(phases)
        self.assert_web_latency(report, "p99 <",
                                "2.10 ms (empty RPC at the same rate: 6.00 ms)", "**FAIL**")
        self.assert_web_latency(report, "p99.9",
                                "5.10 ms (empty RPC at the same rate: 11.00 ms)", "**FAIL**")

    def test_errors_of_any_measured_phase_fail_zero_errors_but_overload(self):
        phases = self.base_phases()
        report = self.report(phases)
        self.assertIn("**pass**", self.target_line(report, "zero errors"))
        phases["overload"] = phase(20000, latency(900, 8000, 15000), offered=22000,
                                   errors={"RESOURCE_EXHAUSTED": 500}, degraded=900)
        phases["recovery"] = phase(3000, latency(300, 1000, 2000), offered=3000)
        report = self.report(phases)
        self.assertIn("**pass**", self.target_line(report, "zero errors"))
        phases["open-nba-low"] = phase(3000, latency(200, 1500, 4000), offered=3000,
                                       errors={"UNAVAILABLE": 2})
        report = self.report(phases)
        line = self.target_line(report, "zero errors")
        self.assertIn("2 errors", line)
        self.assertIn("**FAIL**", line)

    def test_a_missing_floor_phase_leaves_the_floor_out(self):
        phases = self.base_phases()
        del phases["open-empty"]
        del phases["open-empty-low"]
        report = self.report(phases)
        self.assertNotIn("Latency floors", report)
        p99 = self.target_line(report, "web mix, open loop at 50% of NBA max: p99 <")
        self.assertNotIn("empty RPC at the same rate", p99)


if __name__ == "__main__":
    unittest.main()
