#!/usr/bin/env python3
"""Media capacity (issue 7 part 3; issue 5's "concurrent legs per core with mixing").

Concurrent legs with real SRTP (AES_CM_128_HMAC_SHA1_80) in 5-party meetings, driven by the
workspace's load generator `vc-loadgen` (crates/loadgen): every leg joins by SIP over UDP
with its own join token, sends a tone at 50 packets/s and receives the server's N-1 mix.
The ladder raises the leg count step by step (fresh meetings per step); per step it reports

  late %    received packets more than 60 ms after their slot (vc-loadgen's definition:
            lateness against the leg's best transit, RTP timestamps as media time)
  lost %    sequence gaps in what the server sent, of the packets expected
  CPU %     the server's user+system CPU over the measurement, of one core and of the
            machine (/proc/<pid>/stat), and the load generator's own CPU
  RSS/leg   (server VmRSS peak during the step - VmRSS of the idle server after start) / legs
            (the idle baseline, not the previous step's, since the allocator keeps memory)

The knee is the largest step whose late and lost packets are both at most 0.1 % with every
call answered; the first step above it is where late packets pass 0.1 %. Legs per core =
legs at the knee / server cores used there. The load generator runs on the same 2 cores:
its CPU is reported so a reader can tell whether the generator was the limit.

    bench/media/capacity.py [--codec pcmu|opus] [--steps 50,100,...] [--step-seconds 20]
                            [--json PATH] [--quick] [--no-build]

Builds `voice-connector` and `vc-loadgen` in release mode with CARGO_TARGET_DIR (default
/work/target-bench). Loopback only; every step is bounded in legs (<= 5000) and time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "lib"))
sys.path.insert(0, str(ROOT / "tests"))
from results import emit  # noqa: E402
from vctest.ports import free_udp_tcp_port  # noqa: E402

MEETING_SIZE = 5
PER_BATCH = 100
MAX_LEGS = 5000


def raise_nofile() -> None:
    """Each leg is a socket in the generator and two in the server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


#: Scheduling priority (nice value) given to the server and the generator; set by --nice.
NICE = 0


def set_nice() -> None:
    """Runs in the child before exec (after setsid): gives the process we start (and every
    thread it will create) the --nice priority (negative: ahead of other work on a shared
    machine, e.g. other engineers' compilers; needs root). With autogroup scheduling
    (sched_autogroup_enabled=1) a thread's nice only counts inside its session's group, so
    the new session's group gets the same nice (/proc/self/autogroup, sched(7))."""
    if NICE:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
        except OSError:
            pass
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(NICE))
        except OSError:
            pass


def build(target_dir: Path) -> None:
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    cmd = ["cargo", "build", "--release", "-p", "voice-connector", "-p", "vc-loadgen"]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


class Server:
    """The release voice-connector on free loopback ports, with boto3 clients and one voice
    connector (CpsLimit as given; every source on 127.0.0.0/8 allowed)."""

    def __init__(self, binary: Path, work: Path, cps_limit: int, log_level: str = "info"):
        self.binary, self.work, self.cps_limit, self.log_level = binary, work, cps_limit, log_level
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import boto3
        from botocore.config import Config

        data = self.work / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.http, self.sip, self.tls = free_udp_tcp_port(), free_udp_tcp_port(), free_udp_tcp_port()
        self.cmd = [str(self.binary), "serve", "--data-dir", str(data),
                    "--http", f"127.0.0.1:{self.http}", "--sip", f"127.0.0.1:{self.sip}",
                    "--sip-tls", f"127.0.0.1:{self.tls}", "--rtp-ports", "20000-39999",
                    "--api-rate-limit", "0"]
        env = dict(os.environ, NO_COLOR="1", VC_LOG=self.log_level)
        self.log = open(self.work / "server.log", "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                     preexec_fn=set_nice)
        creds = data / "api-credentials"
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited rc={self.proc.returncode}; see {self.work}/server.log")
            if time.monotonic() > deadline:
                raise RuntimeError("server API did not come up in 30 s")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=1).read()
                if creds.is_file() and len(creds.read_text().split()) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        key, secret = creds.read_text().split()[:2]
        mk = lambda svc: boto3.client(  # noqa: E731
            svc, endpoint_url=f"http://127.0.0.1:{self.http}", region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))
        self.voice, self.meetings = mk("chime-sdk-voice"), mk("chime-sdk-meetings")
        vc = self.voice.create_voice_connector(Name="bench-" + uuid.uuid4().hex[:8],
                                               RequireEncryption=False)["VoiceConnector"]
        self.voice.put_voice_connector_termination(
            VoiceConnectorId=vc["VoiceConnectorId"],
            Termination={"CidrAllowedList": ["127.0.0.0/8"], "CallingRegions": ["US"],
                         "CpsLimit": self.cps_limit})
        self.host = vc["OutboundHostName"]
        self.idle_rss_kib = rss_kib(self.proc.pid)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def healthy(self) -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=5).status == 200
        except OSError:
            return False

    def active_legs(self) -> int | None:
        """vc_active_legs from /metrics."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5).read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("vc_active_legs "):
                return int(float(line.split()[1]))
        return None

    def wait_idle(self, timeout: float = 15.0) -> int | None:
        """Waits until the server holds no legs (the previous step's BYEs are processed)."""
        deadline = time.monotonic() + timeout
        n = self.active_legs()
        while n and time.monotonic() < deadline:
            time.sleep(0.5)
            n = self.active_legs()
        return n

    def joins(self, legs: int, size: int = MEETING_SIZE) -> dict:
        """A joins file for vc-loadgen: ceil(legs/size) fresh meetings of `size` attendees."""
        meetings = []
        left = legs
        while left > 0:
            n = min(size, left)
            mid = self.meetings.create_meeting(
                ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1",
                ExternalMeetingId="bench-" + uuid.uuid4().hex[:12])["Meeting"]["MeetingId"]
            tokens = []
            for start in range(0, n, PER_BATCH):
                k = min(PER_BATCH, n - start)
                resp = self.meetings.batch_create_attendee(
                    MeetingId=mid, Attendees=[{"ExternalUserId": "bench-" + uuid.uuid4().hex[:12]}
                                              for _ in range(k)])
                if resp.get("Errors"):
                    raise RuntimeError(f"BatchCreateAttendee errors: {resp['Errors'][:3]}")
                tokens += [a["JoinToken"] for a in resp["Attendees"]]
            meetings.append({"legs": [f"sip:+17035550122@{self.host};X-chime-join-token={t}" for t in tokens]})
            left -= n
        return {"server": f"127.0.0.1:{self.sip}", "local_ip": "127.0.0.1", "meetings": meetings}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.log.close()
        if "panicked" in (self.work / "server.log").read_text(errors="replace"):
            print("  !! the server log shows a panic", file=sys.stderr)


def run_loadgen(loadgen: Path, joins: dict, work: Path, args: list[str], timeout: float) -> dict:
    """Runs vc-loadgen on a joins file; returns its JSON report (and the command)."""
    work.mkdir(parents=True, exist_ok=True)
    jf = work / "joins.json"
    jf.write_text(json.dumps(joins))
    cmd = [str(loadgen), "--joins", str(jf), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(work / "loadgen.err", "wb"),
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=set_nice)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        raise RuntimeError(f"vc-loadgen did not finish in {timeout:.0f} s")
    if proc.returncode != 0:
        raise RuntimeError(f"vc-loadgen rc={proc.returncode}: {(work / 'loadgen.err').read_text()[-500:]}")
    report = json.loads(out)
    (work / "report.json").write_text(json.dumps(report, indent=2))
    report["_cmd"] = " ".join(shlex.quote(c) for c in cmd)
    return report


def perf_report(data: Path, top: int = 25) -> str:
    """The hottest symbols (self time) of a perf recording."""
    p = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,symbol",
                        "--stdio", "--percent-limit", "0.7"], capture_output=True, text=True, timeout=300)
    lines = [l for l in p.stdout.splitlines() if l.strip() and not l.startswith("#")
             and "%" in l.split()[0]]
    return "\n".join(lines[:top])


def step(server: Server, loadgen: Path, legs: int, a, work: Path, perf: bool = False) -> dict:
    t0 = time.monotonic()
    joins = server.joins(legs)
    prov_s = time.monotonic() - t0
    rss0 = server.idle_rss_kib
    lg_args = ["--codec", a.codec, "--legs", str(legs), "--duration", str(a.step_seconds),
               "--warmup", str(a.warmup), "--cps", str(a.setup_cps), "--threads", str(a.threads),
               "--watch-pid", str(server.pid)]
    timeout = legs / a.setup_cps + a.warmup + a.step_seconds + 90
    perf_proc = None
    if perf:
        # Record the server (call graphs) over the middle of the measurement.
        (work / f"{legs}").mkdir(parents=True, exist_ok=True)
        delay = legs / a.setup_cps + a.warmup + 3
        secs = max(3, a.step_seconds - 6)
        perf_proc = subprocess.Popen(
            ["sh", "-c", f"sleep {delay:.1f}; exec perf record -F 499 -g -p {server.pid} "
                         f"-o {work / f'{legs}' / 'perf.data'} -- sleep {secs}"],
            stdout=subprocess.DEVNULL, stderr=open(work / f"{legs}" / "perf.err", "wb"),
            start_new_session=True)
    rep = run_loadgen(loadgen, joins, work / f"{legs}", lg_args, timeout)
    if perf_proc is not None:
        perf_proc.wait(timeout=120)
    rx, calls, gen, srv = rep["rx"], rep["calls"], rep["generator"], rep["watched"]
    ncpu = os.cpu_count() or 1
    srv_cpu = srv.get("cpu_pct") or 0.0
    row = {
        "legs": legs, "answered": calls["answered"], "failed": calls["failed_by_status"],
        "late_pct": rx["late_pct"], "lost_pct": rx["lost_pct"],
        "received": rx["received"], "legs_without_packets": rx["legs_without_packets"],
        "srtp_failures": rx["srtp_failures"], "lateness_p99_ms": rx["lateness_ms_p99"],
        "lateness_max_ms": rx["lateness_ms_max"],
        "late_by_second": rx.get("late_by_second", [])[:5],
        "server_cpu_pct_core": round(srv_cpu, 1), "server_cpu_pct_machine": round(srv_cpu / ncpu, 1),
        "server_rss_mib": round((srv.get("rss_kib_peak") or 0) / 1024, 1),
        "rss_per_leg_kib": round(max(0, (srv.get("rss_kib_peak") or 0) - rss0) / legs, 1),
        "gen_cpu_pct_core": round(gen.get("cpu_pct") or 0.0, 1),
        "gen_behind_p99_ms": rep["tx"]["behind_ms_p99"], "gen_skipped": rep["tx"]["skipped"],
        "gen_send_errors": rep["tx"]["send_errors"],
        "setup_p99_ms": calls["setup_ms_p99"], "provision_s": round(prov_s, 1),
        "load": os.getloadavg(), "cmd": rep["_cmd"],
    }
    if perf:
        row["perf_top"] = perf_report(work / f"{legs}" / "perf.data")
    row["clean"] = (calls["answered"] == legs and rx["late_pct"] <= 0.1 and rx["lost_pct"] <= 0.1
                    and rx["legs_without_packets"] == 0 and rx["srtp_failures"] == 0)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", choices=["pcmu", "opus"], default="pcmu")
    ap.add_argument("--steps", default="50,100,200,400,600,800,1000")
    ap.add_argument("--step-seconds", type=int, default=20)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--setup-cps", type=float, default=200.0)
    ap.add_argument("--threads", type=int, default=1, help="vc-loadgen worker threads")
    ap.add_argument("--continue-past-knee", type=int, default=1,
                    help="steps to run after the first unclean one (the ladder then stops)")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "/work/target-bench"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="nice value (thread and session autogroup) for the server and the generator, "
                         "so other work on a shared machine does not decide the figure (default -10 as "
                         "root, else 0)")
    ap.add_argument("--quick", action="store_true", help="smoke run: steps 20,100 of 5 s")
    ap.add_argument("--perf-legs", type=int, default=0,
                    help="after the ladder, one more step at this many legs with `perf record -g` on the server")
    ap.add_argument("--json", help="append result rows (bench/lib/results.py) to this file")
    ap.add_argument("--out", default=f"/tmp/vc-bench-capacity-{time.strftime('%Y%m%dT%H%M%S')}")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.step_seconds, a.warmup = "20,100", 5, 2.0
    global NICE
    NICE = a.nice
    steps = [int(s) for s in a.steps.split(",")]
    if not steps or max(steps) > MAX_LEGS or len(steps) > 12 or not 1 <= a.step_seconds <= 120:
        ap.error(f"bounded run: at most 12 steps of at most {MAX_LEGS} legs, 1..120 s each")
    target = Path(a.target_dir)
    if not a.no_build:
        build(target)
    binary, loadgen = target / "release" / "voice-connector", target / "release" / "vc-loadgen"
    work = Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    print(f"output in {work}; cores {os.cpu_count()}; load before {os.getloadavg()}", flush=True)
    server = Server(binary, work / "server", cps_limit=100000)
    rows: list[dict] = []
    try:
        server.start()
        past = 0
        for legs in steps:
            r = step(server, loadgen, legs, a, work / "steps")
            rows.append(r)
            print(f"  {legs:>5} legs: answered {r['answered']} late {r['late_pct']:.3f}% lost {r['lost_pct']:.3f}% "
                  f"p99 lateness {r['lateness_p99_ms']} ms | server {r['server_cpu_pct_core']}% of a core "
                  f"({r['server_cpu_pct_machine']}% of machine), RSS {r['server_rss_mib']} MiB, "
                  f"{r['rss_per_leg_kib']} KiB/leg | generator {r['gen_cpu_pct_core']}% "
                  f"(behind p99 {r['gen_behind_p99_ms']} ms, skipped {r['gen_skipped']}) | load {r['load'][0]:.2f} "
                  f"{'clean' if r['clean'] else 'NOT CLEAN'}", flush=True)
            if r["late_by_second"]:
                print(f"         late packets by second of the measurement (busiest): {r['late_by_second']}; "
                      f"max lateness {r['lateness_max_ms']:.0f} ms", flush=True)
            left = server.wait_idle()
            if left:
                print(f"  !! {left} legs still active on the server 15 s after the step", flush=True)
            if not r["clean"]:
                past += 1
                if past > a.continue_past_knee:
                    break
        if a.perf_legs:
            server.wait_idle()
            pr = step(server, loadgen, a.perf_legs, a, work / "perf", perf=True)
            print(f"\nperf at {a.perf_legs} legs (server {pr['server_cpu_pct_core']}% of a core, late "
                  f"{pr['late_pct']:.3f}%), top self time:\n{pr['perf_top']}", flush=True)
            (work / "perf.txt").write_text(pr["perf_top"] + "\n")
    finally:
        server.stop()
    clean = [r for r in rows if r["clean"]]
    knee = max(clean, key=lambda r: r["legs"]) if clean else None
    first_bad = next((r for r in rows if not r["clean"] and (knee is None or r["legs"] > knee["legs"])), None)
    codec = "G.711" if a.codec == "pcmu" else "Opus"
    print(f"\n| legs | late % | lost % | server CPU % (1 core) | % machine | RSS/leg KiB | generator CPU % |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['legs']} | {r['late_pct']:.3f} | {r['lost_pct']:.3f} | {r['server_cpu_pct_core']} "
              f"| {r['server_cpu_pct_machine']} | {r['rss_per_leg_kib']} | {r['gen_cpu_pct_core']} |")
    cmd = ("bench/media/capacity.py --codec " + a.codec + (" --quick" if a.quick else "")
           + (f" --nice {a.nice}" if a.nice else "") + f" --step-seconds {a.step_seconds}")
    if knee:
        cores = max(knee["server_cpu_pct_core"] / 100.0, 1e-9)
        per_core = knee["legs"] / cores
        print(f"knee: {knee['legs']} legs clean (late <= 0.1 %); late passes 0.1 % at "
              f"{first_bad['legs'] if first_bad else 'more than ' + str(steps[-1])} legs; "
              f"server {knee['server_cpu_pct_core']}% of a core there -> {per_core:.0f} legs per core; "
              f"goal 1,000 legs on 2 cores: {'met' if knee['legs'] >= 1000 else 'NOT met'}")
        note = (f"late passes 0.1 % at {first_bad['legs'] if first_bad else '>' + str(steps[-1])} legs; "
                f"generator {knee['gen_cpu_pct_core']}% CPU on the same 2 cores; load {knee['load'][0]:.2f}")
        emit(a.json, section="Media capacity", figure=f"{codec}+SRTP legs, 5-party, late <= 0.1 %",
             unit="legs", value=knee["legs"], goal=">= 1000", note=note, command=cmd)
        emit(a.json, section="Media capacity", figure=f"{codec}+SRTP legs per server core (mixing)",
             unit="legs/core", value=round(per_core, 1), note=f"at {knee['legs']} legs", command=cmd)
        emit(a.json, section="Media capacity", figure=f"{codec}+SRTP server CPU at {knee['legs']} legs",
             unit="% of one core", value=knee["server_cpu_pct_core"], higher_is_better=False, command=cmd)
        emit(a.json, section="Media capacity", figure=f"{codec}+SRTP server RSS per leg",
             unit="KiB", value=knee["rss_per_leg_kib"], higher_is_better=False, command=cmd)
        emit(a.json, section="Media capacity", figure=f"{codec}+SRTP late packets at {knee['legs']} legs",
             unit="%", value=knee["late_pct"], higher_is_better=False, goal="<= 0.1", command=cmd)
        emit(a.json, section="Media capacity", figure=f"{codec}+SRTP lost packets at {knee['legs']} legs",
             unit="%", value=knee["lost_pct"], higher_is_better=False, command=cmd)
    else:
        print("no clean step")
        emit(a.json, section="Media capacity", figure=f"{codec}+SRTP legs, 5-party, late <= 0.1 %",
             unit="legs", value=0, goal=">= 1000", note="no clean step", command=cmd)
    (work / "results.json").write_text(json.dumps({"args": vars(a), "steps": rows}, indent=2, default=str))
    print(f"results: {work / 'results.json'}; load after {os.getloadavg()}")
    return 0 if knee else 1


if __name__ == "__main__":
    sys.exit(main())
