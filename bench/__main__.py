"""``python -m bench``: start the servers, run every workload against each,
alternating, for several rounds; print the table of medians and write
``docs/benchmarks.json``, ``docs/benchmarks.png`` and ``docs/benchmarks.md``
(``--quick`` and ``--no-docs`` write ``bench/results/`` only)."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from bench import report
from bench.servers import ROOT, Apache, BenchServer, PlainWsgiDAV, Resguardo
from bench.workloads import (
    WORKLOADS,
    Runner,
    Setup,
    Sizes,
    make_cfdi,
    prepare_listings,
    prepare_scaling,
    refused_upload_memory,
    scaling_round,
)


class PeakWatcher:
    """Samples every server's RSS (whole process tree) every 100 ms for the whole
    run. The kernel's high-water mark (VmHWM) is read, then reset, each time the
    workload changes (:meth:`enter`), so a peak shorter than a sample is still
    pinned on the workload that caused it."""

    def __init__(self, servers: list[BenchServer]) -> None:
        self.servers = servers
        self.peak = {s.name: 0 for s in servers}
        #: What was running when each server's peak was seen.
        self.peak_at = {s.name: "" for s in servers}
        self.current = "preparación"
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for s in self.servers:
                if s.alive():
                    rss = s.rss_kib()
                    if rss > self.peak[s.name]:
                        self.peak[s.name], self.peak_at[s.name] = rss, self.current
            time.sleep(0.1)

    def start(self) -> None:
        self._reset_hwm()
        self._t.start()

    def _reset_hwm(self) -> None:
        for s in self.servers:
            if s.alive():
                s.reset_hwm()

    def _take_hwm(self) -> None:
        for s in self.servers:
            if s.alive() and s.name != "apache":
                hwm = s.hwm_kib()
                if hwm > self.peak[s.name] + 1024:
                    self.peak[s.name] = hwm
                    self.peak_at[s.name] = f"{self.current} (VmHWM del kernel)"

    def enter(self, label: str) -> None:
        """The workload ``label`` starts: the high-water mark so far belongs to
        the one before."""
        self._take_hwm()
        self._reset_hwm()
        self.current = label

    def stop(self) -> dict[str, float]:
        self._take_hwm()
        for s in self.servers:
            if s.alive():
                self.peak[s.name] = max(self.peak[s.name], s.rss_kib())
        self._stop.set()
        self._t.join()
        return {k: v / 1024 for k, v in self.peak.items()}


def fsync_cost_ms(folder: Path, n: int = 30) -> float:
    """Median time to write a 4 KiB file and fsync it on the benchmark's disk:
    Resguardo pays this on every upload (durability before commit), plain
    WsgiDAV and Apache never do."""
    times = []
    for i in range(n):
        p = folder / f"fsync-{i}"
        t0 = time.perf_counter()
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
        times.append(time.perf_counter() - t0)
        p.unlink()
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes and 1 round: a smoke test, not numbers to publish")
    ap.add_argument("--no-apache", action="store_true", help="skip Apache")
    ap.add_argument("--only", default="", help="comma list of workload keys to run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--no-docs", action="store_true",
                    help="do not rewrite docs/benchmarks.md and docs/benchmarks.png")
    ap.add_argument("--render", metavar="JSON",
                    help="only rewrite docs/benchmarks.md and .png from a results JSON")
    args = ap.parse_args(argv)
    if args.render:
        import json

        data = json.loads(Path(args.render).read_text(encoding="utf-8"))
        png = ROOT / "docs" / "benchmarks.png"
        report.write_chart(data, png)
        report.write_markdown(data, ROOT / "docs" / "benchmarks.md", png.name)
        print(report.table_text(data))
        return 0

    sizes = Sizes()
    rounds = args.rounds
    if args.quick:
        rounds = 1
        sizes = Sizes(big=8 * 2**20, small_count=100, propfind_small=100, propfind_large=1000,
                      propfind_repeats=2, depth0_requests=200, ops=20, windows_files=10,
                      cfdi=50, scale_files=2000, scale_puts=20)
    only = {k for k in args.only.split(",") if k}
    workloads = [w for w in WORKLOADS if not only or w.key in only]
    started = time.monotonic()
    # On the project's disk, not tmpfs: every server writes to the same kind of storage.
    base = Path(tempfile.mkdtemp(prefix="bench-", dir=os.environ.get("BENCH_TMP", "/var/tmp")))
    print(f"Carpeta temporal: {base}", flush=True)

    setup = Setup(sizes)
    setup.big_payload = os.urandom(sizes.big)
    setup.big_sha = hashlib.sha256(setup.big_payload).hexdigest()
    if any(w.key == "cfdi_500" for w in workloads):
        setup.cfdi_dir, setup.cfdi_skip = make_cfdi(base, rounds, sizes.cfdi)
        if setup.cfdi_skip:
            print(f"CFDI: se omite ({setup.cfdi_skip})", flush=True)
            workloads = [w for w in workloads if w.key != "cfdi_500"]

    servers: list[BenchServer] = [PlainWsgiDAV(base / "wsgidav")]
    apache_skip = "se omitió con --no-apache" if args.no_apache else Apache.available()
    if apache_skip:
        print(f"Apache mod_dav: se omite ({apache_skip})", flush=True)
    else:
        servers.append(Apache(base / "apache"))
    resguardo = Resguardo(base / "resguardo")
    servers.append(resguardo)

    results: dict[str, dict[str, list[float]]] = {s.name: {} for s in servers}
    scaling: dict[str, list[float]] = {"escala10": [], "escala100k": []}
    memory: dict[str, float] = {}
    watcher = PeakWatcher(servers)
    failed = ""
    try:
        for s in servers:
            s.start()
            if isinstance(s, Resguardo):
                s.add_space(Resguardo.SPACE, "80G")
            print(f"{s.label}: {s.url}", flush=True)
        watcher.start()
        if any(w.key.startswith("propfind") for w in workloads):
            for s in servers:
                prepare_listings(s, sizes)
        if not only or "escala" in only:
            prepare_scaling(resguardo, sizes)
        print(f"Preparado en {time.monotonic() - started:.0f} s; {rounds} rondas", flush=True)

        for rnd in range(rounds):
            # Rotate the order each round so no server always goes first.
            order = servers[rnd % len(servers):] + servers[: rnd % len(servers)]
            runners = {s.name: Runner(s, setup, rnd) for s in order}
            watcher.enter(f"ronda {rnd + 1}, preparación")
            for r in runners.values():
                r.prepare()
            for w in workloads:
                watcher.enter(f"ronda {rnd + 1}, {w.key}")
                for s in order:
                    value = getattr(runners[s.name], w.key)()
                    results[s.name].setdefault(w.key, []).append(value)
                line = "  ".join(f"{s.name}={results[s.name][w.key][-1]:.1f}" for s in order)
                print(f"ronda {rnd + 1} {w.key:18s} {w.unit:7s} {line}", flush=True)
            for r in runners.values():
                r.close()
            if not only or "escala" in only:
                watcher.enter(f"ronda {rnd + 1}, escala")
                sc = scaling_round(resguardo, sizes, rnd)
                for k, v in sc.items():
                    scaling[k].append(v)
                print(f"ronda {rnd + 1} escala             arch/s  "
                      f"10={sc['escala10']:.1f}  100k={sc['escala100k']:.1f}", flush=True)
        if not only or "memoria" in only:
            watcher.enter("memoria")
            memory = refused_upload_memory(resguardo)
            print("memoria (subidas rechazadas, MiB): "
                  + "  ".join(f"{k}={v:.1f}" for k, v in memory.items()), flush=True)
    except Exception:  # noqa: BLE001 - reported, servers stopped, non-zero exit
        failed = traceback.format_exc()
        print(failed, file=sys.stderr, flush=True)
    finally:
        peaks = watcher.stop() if watcher._t.is_alive() else {}
        for s in servers:
            s.stop()
    if failed:
        print(f"El banco falló; registros en {base}", file=sys.stderr)
        return 1

    fsync_ms = fsync_cost_ms(base)
    medians = {s: {k: statistics.median(v) for k, v in r.items()} for s, r in results.items()}
    data = report.build(
        workloads=workloads, servers=servers, medians=medians, samples=results,
        scaling={k: statistics.median(v) for k, v in scaling.items() if v},
        scaling_samples=scaling, memory=memory, peaks=peaks, sizes=sizes, rounds=rounds,
        peak_at=watcher.peak_at, apache_skip=apache_skip or "", cfdi_skip=setup.cfdi_skip,
        quick=args.quick,
        elapsed=time.monotonic() - started, fsync_ms=fsync_ms)
    print()
    print(report.table_text(data))
    if args.quick or args.no_docs:
        json_path = ROOT / "bench" / "results" / ("quick.json" if args.quick else "latest.json")
        json_path.parent.mkdir(exist_ok=True)
    else:
        json_path = ROOT / "docs" / "benchmarks.json"
    report.write_json(data, json_path)
    print(f"\nJSON: {json_path}")
    if not args.quick and not args.no_docs:
        png = ROOT / "docs" / "benchmarks.png"
        if report.write_chart(data, png):
            print(f"Gráfica: {png}")
        md = ROOT / "docs" / "benchmarks.md"
        report.write_markdown(data, md, png.name)
        print(f"Informe: {md}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    print(f"Duración total: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
