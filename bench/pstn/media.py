"""bench/pstn/run's media steps: concurrent calls with RTP both ways through a target, from
`vc-loadgen --pstn` (crates/loadgen/src/pstn.rs), which is both the PBX placing the calls
(127.0.0.1) and the carrier answering them (127.0.0.2), so every packet it sends crosses the
target once and is accounted on the other leg: loss (sequence gaps) and lateness (more than
60 ms after its slot) per leg, both directions.

Targets: ours (the connector's termination; the carrier trunk is the generator's carrier
address, added with `voice-connector admin carriers add` before `serve`) and the peer,
Kamailio (bench/pstn/kamailio.cfg with -A WITH_RTPENGINE) in front of rtpengine (Debian
rtpengine-daemon in userspace forwarding mode: --table=-1, no kernel module). The call count
rises step by step; the knee is the largest count with every call answered and loss and
lateness both at most 0.1 %. CPU is the target's user+system CPU over the measurement in %
of one core (ours: the server; the peer: Kamailio's processes + rtpengine), sampled by
vc-loadgen from /proc; calls per core = calls at the knee / (CPU % / 100).
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "bench" / "lib"))
sys.path.insert(0, str(HERE.parents[1] / "tests"))
import results  # noqa: E402
from procs import group_members, preexec_nice, stop  # noqa: E402
from sipp import Kamailio  # noqa: E402
from vcserver import VcServer  # noqa: E402
from vctest.ports import free_udp_port  # noqa: E402

KAMAILIO_CFG = HERE / "kamailio.cfg"
CARRIER_IP = "127.0.0.2"
MAX_CALLS = 2000
PEER = "Kamailio 5.6 + rtpengine 10.5 (userspace)"
#: The peer's RTP ports (ours uses 20000-29999; both below the kernel's ephemeral range).
RTPENGINE_PORTS = (10000, 19999)


def raise_nofile() -> None:
    """Every leg is a socket in the generator and one or two in the target."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_carrier_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((CARRIER_IP, 0))
        return s.getsockname()[1]


def add_carrier(binary: Path, data: Path, address: str, codecs: str) -> None:
    """`voice-connector admin carriers add` before `serve`, as the operator does."""
    data.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), "admin", "carriers", "add", "bench-carrier", "--data-dir", str(data),
           "--address", address, "--transport", "udp", "--prefix", "+1", "--priority", "1",
           "--codecs", codecs]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc={p.returncode} {p.stderr.strip()[-300:]}")


class OursMedia:
    """The voice connector; the generator's carrier address is its only carrier (PCMU)."""

    name = "ours"

    def __init__(self, binary: Path, work: Path, nice: int, carrier: str):
        self.binary, self.carrier = binary, carrier
        # No OPTIONS keep-alives: the carrier only listens while the generator runs.
        self.server = VcServer(binary, work, ["--carrier-options-interval", "0"], nice)

    def start(self) -> None:
        add_carrier(self.binary, self.server.data, self.carrier, "PCMU")
        self.server.start()
        _, self.host = self.server.create_connector(["127.0.0.1/32"])

    def loadgen_args(self) -> list[str]:
        return ["--pstn", self.server.sip_addr(), "--uri-host", self.host]

    def pids(self) -> list[int]:
        return [self.server.proc.pid]

    def rtp_sent(self) -> dict[str, float]:
        """The server's vc_rtp_sent_total by mode (relayed without decoding, mixed, dtmf)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.server.http}/metrics", timeout=2).read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("vc_rtp_sent_total{"):
                label, value = line.rsplit(" ", 1)
                out[label[label.index("{") + 1:-1]] = float(value)
        return out

    def wait_idle(self, timeout: float = 20.0) -> int:
        """Waits until the server holds no call leg; the legs still up after `timeout`."""
        deadline = time.monotonic() + timeout
        legs = -1
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{self.server.http}/metrics", timeout=2).read()
                legs = next((int(float(l.split()[1])) for l in text.decode().splitlines()
                             if l.startswith("vc_active_legs ")), 0)
            except OSError:
                legs = -1
            if legs == 0:
                return 0
            time.sleep(0.5)
        return legs

    def stop(self) -> None:
        self.server.stop()


class Rtpengine:
    """rtpengine in userspace forwarding mode (no kernel table) on 127.0.0.1, its NG control
    protocol on a free UDP port."""

    def __init__(self, work: Path, threads: int, nice: int):
        self.work, self.threads, self.nice = work, threads, nice
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if shutil.which("rtpengine") is None:
            raise RuntimeError("rtpengine is not installed (Debian rtpengine-daemon)")
        self.work.mkdir(parents=True, exist_ok=True)
        self.ng = free_udp_port()
        self.cmd = ["rtpengine", "--config-file=none", "--foreground", "--log-stderr", "--log-level=4",
                    "--table=-1", "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{self.ng}",
                    f"--port-min={RTPENGINE_PORTS[0]}", f"--port-max={RTPENGINE_PORTS[1]}",
                    f"--num-threads={self.threads}", "--delete-delay=0"]
        self.proc = subprocess.Popen(self.cmd, cwd=self.work, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "rtpengine.log", "wb"),
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=preexec_nice(self.nice))
        deadline = time.monotonic() + 15
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"rtpengine exited rc={self.proc.returncode}; see {self.work}/rtpengine.log")
                s.sendto(b"bench1 d7:command4:pinge", ("127.0.0.1", self.ng))
                try:
                    if b"pong" in s.recv(1000):
                        return
                except (TimeoutError, socket.timeout):
                    pass
        raise RuntimeError("rtpengine does not answer its NG ping")

    def stop(self) -> None:
        stop(self.proc, "rtpengine")


class PeerMedia:
    """Kamailio with rtpengine_manage() in front of rtpengine; the Request-URI names the
    generator's carrier address, where Kamailio relays."""

    name = "peer"

    def __init__(self, work: Path, args, transcode: bool):
        self.rtpengine = Rtpengine(work / "rtpengine", args.rtpengine_threads, args.nice)
        self.work, self.args, self.transcode = work, args, transcode
        self.kamailio: Kamailio | None = None

    def start(self) -> None:
        self.rtpengine.start()
        defines = ["-A", "WITH_RTPENGINE", "-A", f'RTPENGINE_SOCK="udp:127.0.0.1:{self.rtpengine.ng}"']
        if self.transcode:
            defines += ["-A", "TRANSCODE_PCMU"]
        self.kamailio = Kamailio(self.work / "kamailio", self.args.kamailio_children, 256, KAMAILIO_CFG,
                                 None, defines, nice=self.args.nice)
        self.kamailio.start()

    def loadgen_args(self) -> list[str]:
        return ["--pstn", self.kamailio.sip_addr()]

    def pids(self) -> list[int]:
        return [pid for pid, _ in group_members(self.kamailio.pgid())] + [self.rtpengine.proc.pid]

    def rtp_sent(self) -> dict[str, float]:
        return {}

    def wait_idle(self, timeout: float = 20.0) -> int:
        time.sleep(3)  # BYEs were answered; rtpengine deletes at once (--delete-delay=0)
        return 0

    def stop(self) -> None:
        if self.kamailio:
            self.kamailio.stop()
        self.rtpengine.stop()


def run_loadgen(args, target, carrier: str, calls: int, transcode: bool, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    cmd = [args.loadgen, *target.loadgen_args(), "--carrier", carrier, "--legs", str(calls),
           "--codec", "g722" if transcode else "pcmu", "--carrier-codec", "pcmu",
           "--cps", f"{args.setup_cps:g}", "--warmup", f"{args.warmup:g}",
           "--duration", str(args.step_seconds), "--watch-pid", ",".join(map(str, target.pids()))]
    timeout = 2 * calls / args.setup_cps + args.warmup + args.step_seconds + 90
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(work / "loadgen.err", "wb"),
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=preexec_nice(args.nice))
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, "vc-loadgen")
        raise RuntimeError(f"vc-loadgen did not finish in {timeout:.0f} s")
    if proc.returncode != 0:
        raise RuntimeError(f"vc-loadgen rc={proc.returncode}: {(work / 'loadgen.err').read_text()[-500:]}")
    report = json.loads(out)
    (work / "report.json").write_text(json.dumps(report, indent=2))
    report["_cmd"] = " ".join(shlex.quote(str(c)) for c in cmd)
    return report


def row_of(calls: int, rep: dict) -> dict:
    rx, c = rep["rx"], rep["calls"]
    row = {
        "calls": calls, "answered": c["answered"], "failed": c["failed_by_status"],
        "other_end": c["other_end"], "carrier_refused": c["carrier_refused"],
        "lost_pct": rx["lost_pct"], "late_pct": rx["late_pct"],
        "lost_pct_pbx": rep["rx_pbx"]["lost_pct"], "lost_pct_carrier": rep["rx_carrier"]["lost_pct"],
        "legs_without_packets": rx["legs_without_packets"], "legs": rx["legs"],
        "lateness_p99_ms": rx["lateness_ms_p99"], "lateness_max_ms": rx["lateness_ms_max"],
        "cpu_pct_core": round(rep["watched"].get("cpu_pct") or 0.0, 1),
        "rss_mib_peak": round((rep["watched"].get("rss_kib_peak") or 0) / 1024, 1),
        "gen_cpu_pct_core": round(rep["generator"].get("cpu_pct") or 0.0, 1),
        "gen_behind_p99_ms": rep["tx"]["behind_ms_p99"], "setup_p99_ms": c["setup_ms_p99"],
        "load": os.getloadavg(), "cmd": rep["_cmd"],
    }
    row["clean"] = (c["answered"] == calls and rx["legs"] == 2 * calls and rx["legs_without_packets"] == 0
                    and rx["lost_pct"] <= 0.1 and rx["late_pct"] <= 0.1)
    return row


def media_ladder(target, args, transcode: bool, work: Path) -> list[dict]:
    carrier = f"{CARRIER_IP}:{free_carrier_port()}"
    if isinstance(target, OursMedia):
        target.carrier = carrier
    rows: list[dict] = []
    print(f"-- {target.name}", flush=True)
    target.start()
    try:
        for calls in (args.transcode_calls if transcode else args.calls):
            try:
                r = row_of(calls, run_loadgen(args, target, carrier, calls, transcode, work / f"{target.name}-{calls}"))
            except (RuntimeError, ValueError, KeyError) as e:
                print(f"  {calls:>5} calls: generator failed: {e}", flush=True)
                break
            # Cumulative over the ladder: shows whether ours relayed without decoding.
            r["rtp_sent_by_mode"] = target.rtp_sent()
            rows.append(r)
            print(f"  {calls:>5} calls: answered {r['answered']} lost {r['lost_pct']:.3f}% "
                  f"(pbx {r['lost_pct_pbx']:.3f}%, carrier {r['lost_pct_carrier']:.3f}%) late {r['late_pct']:.3f}% "
                  f"p99 lateness {r['lateness_p99_ms']} ms | target {r['cpu_pct_core']}% of a core, "
                  f"{r['rss_mib_peak']} MiB | generator {r['gen_cpu_pct_core']}% | load {r['load'][0]:.2f} "
                  f"{'clean' if r['clean'] else 'NOT CLEAN'}"
                  + (f" | server RTP sent {r['rtp_sent_by_mode']}" if r["rtp_sent_by_mode"] else "")
                  + ("" if r["clean"] else f" failed={r['failed']} other={r['other_end']} "
                     f"silent legs={r['legs_without_packets']}"), flush=True)
            left = target.wait_idle()
            if left:
                print(f"  !! {left} legs still up 20 s after the step", flush=True)
            if not r["clean"]:
                break
    finally:
        target.stop()
    return rows


def knee(rows: list[dict]) -> dict | None:
    clean = [r for r in rows if r["clean"]]
    return max(clean, key=lambda r: r["calls"]) if clean else None


def per_core(r: dict | None) -> float | None:
    if not r or r["cpu_pct_core"] <= 0:
        return None
    return r["calls"] / (r["cpu_pct_core"] / 100.0)


def step_media(args, work: Path, transcode: bool, command: str) -> None:
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[dict]] = {}
    for name, make in (("ours", lambda: OursMedia(Path(args.binary), work / "ours", args.nice, "")),
                       ("peer", lambda: PeerMedia(work / "peer", args, transcode))):
        try:
            out[name] = media_ladder(make(), args, transcode, work)
        except Exception as e:  # a target that fails to start must not lose the other
            print(f"  !! {name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            out[name] = []
    (work / "results.json").write_text(json.dumps(out, indent=2, default=str))
    ours, peer = knee(out["ours"]), knee(out["peer"])
    label = "transcoded G.722 <-> PCMU" if transcode else "relayed G.711 (PCMU both legs)"
    for name, k in (("ours", ours), ("peer", peer)):
        first_bad = next((r for r in out[name] if not r["clean"]), None)
        print(f"{name}: {k['calls'] if k else 'no'} clean calls ({label}); "
              f"{'passes 0.1 % at ' + str(first_bad['calls']) if first_bad else 'clean to the top of the ladder'}; "
              f"{per_core(k) or 0:.0f} calls per core", flush=True)
    if not args.json:
        return
    sec = "PSTN: concurrent calls with RTP both ways (vc-loadgen PBX <-> target <-> vc-loadgen carrier)"
    top = (args.transcode_calls if transcode else args.calls)[-1]
    capped = peer is not None and peer["calls"] == top

    def why(name: str, k: dict | None) -> str:
        bad = next((r for r in out[name] if not r["clean"]), None)
        return (f"{name}: loss/late passes 0.1 % at {bad['calls']} calls (lost {bad['lost_pct']:.2f} %, "
                f"late {bad['late_pct']:.2f} %; target {bad['cpu_pct_core']} %, generator "
                f"{bad['gen_cpu_pct_core']} % of a core)" if bad else f"{name}: clean at the top ({top})")

    note = f"{why('ours', ours)}; {why('peer', peer)}; {args.step_seconds} s measured per step"
    sent = out["ours"][-1]["rtp_sent_by_mode"] if out["ours"] else {}
    if sent:
        relayed, mixed = sent.get('mode="relayed"', 0), sent.get('mode="mixed"', 0)
        note += f"; ours sent {relayed:.0f} RTP packets relayed without decoding, {mixed:.0f} decoded and re-encoded"
    results.emit(args.json, section=sec, figure=f"{label}: calls with loss and late <= 0.1 %", unit="calls",
                 value=ours["calls"] if ours else 0, peer=PEER, peer_value=peer["calls"] if peer else 0,
                 peer_capped=capped, note=note, command=command)
    if per_core(ours) is not None:
        results.emit(args.json, section=sec, figure=f"{label}: calls per core at the knee", unit="calls/core",
                     value=per_core(ours), peer=PEER, peer_value=per_core(peer),
                     note=f"ours {ours['cpu_pct_core']} % of a core at {ours['calls']} calls"
                          + (f"; peer {peer['cpu_pct_core']} % at {peer['calls']}" if peer else ""),
                     command=command)
    both = [r["calls"] for r in out["ours"] if r["clean"]]
    same = max((c for c in both if any(p["calls"] == c and p["clean"] for p in out["peer"])), default=None)
    if same is not None:
        o = next(r for r in out["ours"] if r["calls"] == same)
        p = next(r for r in out["peer"] if r["calls"] == same)
        results.emit(args.json, section=sec, figure=f"{label}: CPU at {same} calls", unit="% of one core",
                     value=o["cpu_pct_core"], peer=PEER, peer_value=p["cpu_pct_core"], higher_is_better=False,
                     note=f"generator {o['gen_cpu_pct_core']} % / {p['gen_cpu_pct_core']} % on the same 2 cores",
                     command=command)
