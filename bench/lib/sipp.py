"""SIPp ladders shared by the signalling benchmarks (bench/sip/run: meeting joins,
bench/pstn/run: B2BUA calls): processes stopped by their own pid, a SIPp UAS and Kamailio
as targets, one SIPp UAC step at a given rate, and a ladder of rates that stops at the
first rate with a failed call.

A target has `name`, `start()`, `stop()`, `sip_addr()` (where the UAC sends),
`pgid()` (the process group whose CPU is counted) and `inf_lines(count)` (one injection
line per call, `field0;field1;...`, as the UAC scenario reads them).
"""

from __future__ import annotations

import csv
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from vctest.ports import free_udp_port, free_udp_tcp_port  # noqa: E402

from pcaprtt import Capture  # noqa: E402
from procs import group_cpu_s, preexec_nice, stop  # noqa: E402,F401 (stop: re-exported)


def wait_udp_listener(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Waits until something answers an OPTIONS on host:port (any SIP response)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        local = s.getsockname()[1]
        while time.monotonic() < deadline:
            msg = (
                f"OPTIONS sip:probe@{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                f"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:probe@{host}:{port}>\r\n"
                f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                # The server answers an unverified UDP source with no more bytes than it
                # sent (its reflection guard): the probe is as large as a real INVITE.
                f"Subject: {'p' * 1200}\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            s.sendto(msg, (host, port))
            try:
                data, _ = s.recvfrom(65535)
                if data.startswith(b"SIP/2.0 "):
                    return
            except (TimeoutError, socket.timeout):
                pass
    raise RuntimeError(f"nothing answers SIP on {host}:{port}")


class SippUas:
    """A SIPp UAS running `scenario` on host:<free port>, in the foreground until stopped.
    `extra` adds options (e.g. -rtp_echo)."""

    def __init__(self, work: Path, scenario: Path, host: str = "127.0.0.1", extra: list[str] | None = None,
                 nice: int = 0):
        self.work, self.scenario, self.host, self.extra, self.nice = work, scenario, host, extra or [], nice
        self.port = free_udp_tcp_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.cmd = ["sipp", "-sf", str(self.scenario), "-t", "u1", "-i", self.host, "-p", str(self.port),
                    "-mi", self.host, "-mp", str(free_udp_port()), "-nostdin", *self.extra,
                    "-timeout", "900s", "-trace_stat", "-stf", str(self.work / "uas.stat.csv")]
        self.proc = subprocess.Popen(self.cmd, cwd=self.work, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "uas.err", "wb"),
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=preexec_nice(self.nice))
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp uas exited rc={self.proc.returncode}")

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        stop(self.proc, "sipp uas")


class Kamailio:
    """Kamailio with `cfg` on its own port in front of `uas` (anything with start/stop and
    address()); the Request-URI names the UAS, so the proxy relays there. Set up as operators
    tune it for load (issue 17): the TLSF shared-memory allocator (`-x tlsf`), `shm_mb` of
    shared memory (>= 1024 for the peer figures) and `children` UDP workers (= cores)."""

    name = "kamailio"

    def __init__(self, work: Path, children: int, shm_mb: int, cfg: Path, uas, defines: list[str] | None = None,
                 nice: int = 0):
        self.work, self.children, self.shm_mb, self.cfg = work, children, shm_mb, cfg
        self.uas, self.defines, self.nice = uas, defines or [], nice
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if shutil.which("kamailio") is None:
            raise RuntimeError("kamailio is not installed (apt-get install kamailio)")
        if self.uas is not None:
            self.uas.start()
        self.port = free_udp_tcp_port()
        run_dir = self.work / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.cmd = ["kamailio", "-f", str(self.cfg), "-DD", "-E", "-l", f"udp:127.0.0.1:{self.port}",
                    "-n", str(self.children), "-m", str(self.shm_mb), "-x", "tlsf", "-Y", str(run_dir), "-P", str(run_dir / "kamailio.pid"),
                    "-w", str(run_dir), *self.defines]
        self.proc = subprocess.Popen(self.cmd, cwd=self.work, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "kamailio.log", "wb"),
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=preexec_nice(self.nice))
        wait_udp_listener(self.port)

    def sip_addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pgid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def inf_lines(self, count: int) -> list[str]:
        return [f"{self.uas.address()};none;"] * count

    def stop(self) -> None:
        stop(self.proc, "kamailio")
        if self.uas is not None:
            self.uas.stop()


def read_stat(path: Path) -> dict[str, str]:
    """The last (cumulative) row of a SIPp -trace_stat file."""
    if not path.is_file():
        return {}
    rows = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].rstrip(";").split(";"), rows[-1].rstrip(";").split(";")))


def read_rtt(folder: Path) -> list[tuple[float, float]]:
    """(date ms, INVITE->200 ms) of every call from SIPp's -trace_rtt file."""
    out = []
    for f in folder.glob("*_rtt.csv"):
        with open(f, newline="") as fh:
            for row in csv.reader(fh, delimiter=";"):
                try:
                    out.append((float(row[0]), float(row[1])))
                except (ValueError, IndexError):
                    continue  # header
    return sorted(out)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def run_step(target, rate: int, args, work: Path, scenario: Path, keys: dict[str, str],
             ips: list[str]) -> dict:
    """One rate for `args.step_seconds` (calls held `args.hold_ms`): one SIPp UAC running
    `scenario` (with `-key` `keys`) per address in `ips`, all at once, each at
    rate/len(ips) calls/s. At a rate in `args.pcap_rates` (if any) a packet capture between
    the UACs and the target gives the INVITE->200 times from kernel timestamps
    (bench/lib/pcaprtt.py) beside SIPp's own."""
    n = len(ips)
    calls = rate * args.step_seconds
    step = work / f"{target.name}-{rate}cps"
    step.mkdir(parents=True, exist_ok=True)
    lines = target.inf_lines(calls)
    timeout = args.step_seconds + args.hold_ms // 1000 + 30
    cmds, procs, ports = [], [], []
    per_rate = rate / n
    for k in range(n):
        part = step / f"src{k + 1}"
        part.mkdir(exist_ok=True)
        mine = lines[k::n]
        inf = part / "joins.csv"
        inf.write_text("SEQUENTIAL\n" + "\n".join(mine) + "\n")
        ip = ips[k]
        ports.append(free_udp_tcp_port())
        cmd = ["sipp", "-sf", str(scenario), "-t", "u1", "-i", ip, "-p", str(ports[-1]),
               "-mi", ip, "-mp", str(free_udp_port()), "-nostdin",
               "-inf", str(inf), *[a for k_, v in keys.items() for a in ("-key", k_, v)],
               "-m", str(len(mine)), "-r", f"{per_rate:g}",
               "-l", str(max(int(4 * per_rate * max(1, args.hold_ms // 1000)), 50)),
               "-d", str(args.hold_ms), "-timeout", f"{timeout}s", "-timeout_error",
               "-trace_stat", "-stf", str(part / "stat.csv"), "-fd", "1",
               "-trace_rtt", "-rtt_freq", "1", "-trace_err", "-error_file", str(part / "errors.log"),
               target.sip_addr()]
        cmds.append(cmd)
    capture = None
    if rate in getattr(args, "pcap_rates", ()):
        capture = Capture(step / "sip.pcap", int(target.sip_addr().rsplit(":", 1)[1]), ports)
        capture.start()
    pgid = target.pgid()
    cpu0 = group_cpu_s(pgid) if pgid else 0.0
    t0 = time.monotonic()
    rcs, errs = [], []
    try:
        for k, cmd in enumerate(cmds):
            procs.append(subprocess.Popen(cmd, cwd=step / f"src{k + 1}", stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                          start_new_session=True,
                                          preexec_fn=preexec_nice(getattr(args, "nice", 0))))
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=max(1.0, timeout + 15 - (time.monotonic() - t0)))
                rcs.append(proc.returncode)
                errs.append(err.decode(errors="replace")[-300:])
            except subprocess.TimeoutExpired:
                stop(proc, "sipp uac")
                rcs.append(-1)
                errs.append("sipp did not stop by itself")
    finally:  # interrupted (Ctrl-C): no UAC (nor the capture) outlives the run
        for proc in procs:
            stop(proc, "sipp uac")
        if capture is not None:
            capture.stop()
    wall = time.monotonic() - t0
    cpu = group_cpu_s(pgid) - cpu0 if pgid else 0.0
    ok = failed = retrans = 0
    rtt: list[tuple[float, float]] = []
    spans = []
    for k in range(n):
        stat = read_stat(step / f"src{k + 1}" / "stat.csv")
        ok += int(stat.get("SuccessfulCall(C)", 0) or 0)
        failed += int(stat.get("FailedCall(C)", 0) or 0)
        retrans += int(stat.get("Retransmissions(C)", 0) or 0)
        mine = read_rtt(step / f"src{k + 1}")
        if len(mine) > 1:
            spans.append((len(mine) - 1) / max((mine[-1][0] - mine[0][0]) / 1000, 1e-9))
        rtt += mine
    # Achieved rate: per UAC, its calls over the span in which their 200s arrived; summed.
    achieved = sum(spans)
    times = [ms for _, ms in rtt]
    rc = max(rcs, key=abs)
    result = {
        "target": target.name, "rate": rate, "sources": n, "calls": calls, "successful": ok,
        "failed": failed, "retransmissions": retrans, "sipp_rc": rc, "wall_s": round(wall, 1),
        "achieved_cps": round(achieved, 1),
        "rtt_p50_ms": round(percentile(times, 50), 2), "rtt_p99_ms": round(percentile(times, 99), 2),
        "rtt_max_ms": round(max(times), 2) if times else None,
        "rtt_mean_ms": round(statistics.fmean(times), 2) if times else None,
        # CPU the target (server; Kamailio and its workers; the UAS for "sipp") spent in
        # the step, per completed call.
        "target_cpu_s": round(cpu, 2),
        "target_cpu_ms_per_call": round(1000 * cpu / ok, 3) if ok else None,
        "cmd": " ".join(cmds[0]),
    }
    if capture is not None:
        pts, missing = capture.response_times_ms()
        result.update({"pcap_calls": len(pts), "pcap_unanswered": missing,
                       "pcap_p50_ms": round(percentile(pts, 50), 3) if pts else None,
                       "pcap_p99_ms": round(percentile(pts, 99), 3) if pts else None,
                       "pcap_max_ms": round(max(pts), 3) if pts else None})
    # Sustained: every call completed, none failed, and SIPp really offered the rate.
    result["sustained"] = (rc == 0 and failed == 0 and ok == calls and achieved >= 0.9 * rate)
    if rc != 0:
        result["sipp_stderr"] = [e.strip() for e in errs if e.strip()]
    return result


def rates_of(args):
    """`args.rates` in order; then, with `args.climb` > 1, on past the last one by that factor
    (rounded to 100) up to `args.max_rate`, so a ladder stops where the target fails rather
    than at a fixed top. `args.budget_seconds` (if set) bounds the whole ladder in time."""
    yield from args.rates
    climb, top = getattr(args, "climb", 0) or 0, getattr(args, "max_rate", 0) or 0
    rate = args.rates[-1] if args.rates else 0
    while climb > 1 and rate:
        rate = max(rate + 100, int(round(rate * climb / 100.0)) * 100)
        if rate > top:
            return
        yield rate


def ladder(target, args, step) -> list[dict]:
    """`step(target, rate)` for each rate of rates_of(args) in order, until one is not
    sustained (or the ladder's time budget is spent)."""
    print(f"== {target.name}", flush=True)
    results = []
    budget = getattr(args, "budget_seconds", 0) or 0
    target.start()
    t0 = time.monotonic()
    try:
        for rate in rates_of(args):
            if budget and results and time.monotonic() - t0 + args.step_seconds + 5 > budget:
                print(f"  time budget ({budget} s) spent: the ladder stops at {results[-1]['rate']} cps",
                      flush=True)
                results[-1]["budget_stop"] = True
                break
            r = step(target, rate)
            results.append(r)
            print(f"  {rate:>5} cps: ok={r['successful']}/{r['calls']} failed={r['failed']} "
                  f"retrans={r['retransmissions']} achieved={r['achieved_cps']} cps "
                  f"p50={r['rtt_p50_ms']} ms p99={r['rtt_p99_ms']} ms rc={r['sipp_rc']} "
                  f"cpu={r['target_cpu_ms_per_call']} ms/call "
                  + (f"pcap p50={r.get('pcap_p50_ms')} p99={r.get('pcap_p99_ms')} ms "
                     f"(n={r.get('pcap_calls')}, unanswered {r.get('pcap_unanswered')}) " if "pcap_calls" in r else "")
                  + f"{'OK' if r['sustained'] else 'NOT SUSTAINED'}", flush=True)
            if not r["sustained"]:
                break
            time.sleep(2)  # let the last BYEs and retransmission timers settle
    finally:
        target.stop()
    return results


def best(results: list[dict]) -> dict | None:
    good = [r for r in results if r["sustained"]]
    return max(good, key=lambda r: r["rate"]) if good else None
