"""Turn the medians into the table, the JSON, the chart and docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.servers import THREADS, BenchServer
from bench.workloads import Sizes, Workload

#: Peak memory target of the drive process, MiB.
PEAK_TARGET_MIB = 150
#: A refused upload may grow the drive's memory by at most this much, MiB.
REFUSED_TARGET_MIB = 8
SCALING_TARGET = 1.1


def _speedup(w: Workload, ours: float | None, theirs: float | None) -> float | None:
    """How many times better Resguardo is (>1: Resguardo faster)."""
    if not ours or not theirs:
        return None
    return ours / theirs if w.higher_is_better else theirs / ours


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    apache = "-"
    try:
        apache = subprocess.run(["apache2", "-v"], capture_output=True, text=True,
                                timeout=10).stdout.splitlines()[0].split(":", 1)[1].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    import cheroot
    import wsgidav

    fs = "?"
    try:
        out = subprocess.run(["df", "-T", "/var/tmp"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[1].split()
        fs = out[1]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "memory": mem,
        "os": platform.platform(), "python": platform.python_version(),
        "wsgidav": wsgidav.__version__, "cheroot": cheroot.__version__, "apache": apache,
        "filesystem": fs, "threads": str(THREADS),
    }


def build(*, workloads: list[Workload], servers: list[BenchServer],
          medians: dict[str, dict[str, float]], samples: dict[str, dict[str, list[float]]],
          scaling: dict[str, float], scaling_samples: dict[str, list[float]],
          memory: dict[str, float], peaks: dict[str, float], sizes: Sizes, rounds: int,
          peak_at: dict[str, str] | None = None,
          apache_skip: str, cfdi_skip: str, quick: bool, elapsed: float,
          fsync_ms: float | None = None) -> dict[str, Any]:
    rows = []
    for w in workloads:
        r = medians.get("resguardo", {}).get(w.key)
        wd = medians.get("wsgidav", {}).get(w.key)
        ap = medians.get("apache", {}).get(w.key)
        vs_w = _speedup(w, r, wd)
        rows.append({
            "key": w.key, "label": w.label, "unit": w.unit,
            "higher_is_better": w.higher_is_better,
            "wsgidav": wd, "apache": ap, "resguardo": r,
            "vs_wsgidav": vs_w, "vs_apache": _speedup(w, r, ap),
            "target": w.target, "met": vs_w is not None and vs_w >= w.target,
        })
    per_entry = {}
    for s in medians:
        m = medians[s]
        if "propfind1_1k" in m and "propfind1_10k" in m:
            per_entry[s] = {"1k_us": m["propfind1_1k"] / sizes.propfind_small * 1000,
                            "10k_us": m["propfind1_10k"] / sizes.propfind_large * 1000}
    scale_ratio = (scaling["escala10"] / scaling["escala100k"]
                   if scaling.get("escala10") and scaling.get("escala100k") else None)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "rounds": rounds, "quick": quick, "elapsed_s": round(elapsed),
        "sizes": asdict(sizes), "fsync_4k_ms": fsync_ms,
        "servers": {s.name: s.label for s in servers},
        "apache_skipped": apache_skip, "cfdi_skipped": cfdi_skip,
        "rows": rows, "samples": samples,
        "propfind_per_entry_us": per_entry,
        "scaling": {"files_per_s": scaling, "samples": scaling_samples,
                    "cost_ratio_100k_vs_10": scale_ratio, "target": SCALING_TARGET,
                    "met": scale_ratio is not None and scale_ratio <= SCALING_TARGET},
        "refused_upload_growth_mib": memory,
        "refused_upload_met": bool(memory) and max(memory.values()) <= REFUSED_TARGET_MIB,
        "peak_rss_mib": peaks, "peak_seen_during": peak_at or {},
        "peak_met": peaks.get("resguardo", 1e9) < PEAK_TARGET_MIB,
    }


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "ms" or v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}".replace(",", " ")


def _ratio(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def table_rows(data: dict[str, Any]) -> list[list[str]]:
    out = []
    for r in data["rows"]:
        target = f"≥ {r['target']:.0f}×"
        out.append([r["label"], r["unit"], _fmt(r["wsgidav"], r["unit"]),
                    _fmt(r["apache"], r["unit"]), _fmt(r["resguardo"], r["unit"]),
                    _ratio(r["vs_wsgidav"]), _ratio(r["vs_apache"]), target,
                    "sí" if r["met"] else "NO"])
    return out


HEADER = ["carga", "unidad", "WsgiDAV", "Apache", "Resguardo", "R/WsgiDAV", "R/Apache",
          "meta", "cumple"]


def extra_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    pe = data["propfind_per_entry_us"]
    if pe:
        lines.append("PROPFIND Depth 1, costo por entrada (µs) a 1 000 / 10 000 entradas: "
                     + "; ".join(f"{data['servers'].get(s, s)} {v['1k_us']:.1f} / "
                                 f"{v['10k_us']:.1f}" for s, v in pe.items()))
    sc = data["scaling"]
    if sc["cost_ratio_100k_vs_10"] is not None:
        f = sc["files_per_s"]
        lines.append(
            f"Escala: PUT de 4 KiB en un espacio de 10 archivos {f['escala10']:.0f} arch/s, "
            f"en uno de {data['sizes']['scale_files']:,} archivos {f['escala100k']:.0f} arch/s: "
            f"costo {sc['cost_ratio_100k_vs_10']:.2f}× (meta ≤ {sc['target']}×) — "
            f"{'cumple' if sc['met'] else 'NO cumple'}".replace(",", " "))
    mem = data["refused_upload_growth_mib"]
    if mem:
        lines.append("Memoria: crecimiento de Resguardo al rechazar subidas que no caben "
                     "(MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in mem.items())
                     + f" (meta ≤ {REFUSED_TARGET_MIB}) — "
                     + ("cumple" if data["refused_upload_met"] else "NO cumple"))
    peaks = data["peak_rss_mib"]
    if peaks:
        lines.append("Memoria máxima (RSS, MiB): " + ", ".join(
            f"{data['servers'].get(s, s)} {v:.0f}" for s, v in peaks.items())
            + f" (meta de Resguardo < {PEAK_TARGET_MIB}) — "
            + ("cumple" if data["peak_met"] else "NO cumple")
            + (f"; el pico de Resguardo se vio en: {data['peak_seen_during']['resguardo']}"
               if data.get("peak_seen_during", {}).get("resguardo") else ""))
    if data["apache_skipped"]:
        lines.append(f"Apache mod_dav: se omitió ({data['apache_skipped']}).")
    if data["cfdi_skipped"]:
        lines.append(f"CFDI: se omitió ({data['cfdi_skipped']}).")
    return lines


def table_text(data: dict[str, Any]) -> str:
    rows = [HEADER] + table_rows(data)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                               for i, c in enumerate(r)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + extra_lines(data))


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_chart(data: dict[str, Any], path: Path) -> bool:
    """Bar chart of Resguardo's speed-up over each server, per workload (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib no está instalado (pip install -e '.[bench]'): sin gráfica")
        return False
    rows = data["rows"]
    labels = [r["label"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.8))
    ys = range(len(rows))
    h = 0.38
    ax.barh([y - h / 2 for y in ys], [r["vs_wsgidav"] or 0 for r in rows], h,
            label="Resguardo / WsgiDAV 4.4", color="#2a7ab0")
    if any(r["vs_apache"] for r in rows):
        ax.barh([y + h / 2 for y in ys], [r["vs_apache"] or 0 for r in rows], h,
                label="Resguardo / Apache mod_dav", color="#e0902a")
    for y, r in zip(ys, rows, strict=True):
        ax.plot([r["target"], r["target"]], [y - 0.45, y + 0.45], color="#c0392b", lw=1.5)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("veces más rápido que el otro servidor (>1: Resguardo gana; raya roja: meta)")
    ax.set_title(f"Resguardo frente a WsgiDAV y Apache — medianas de {data['rounds']} rondas, "
                 f"{data['date']}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_markdown(data: dict[str, Any], path: Path, png_name: str) -> None:
    m = data["machine"]
    sz = data["sizes"]
    rows = table_rows(data)
    md = [
        "# Rendimiento: Resguardo frente a WsgiDAV y Apache mod_dav",
        "",
        "Generado por `make bench` (`.venv/bin/python -m bench`) el "
        f"{data['date']}: {data['rounds']} rondas alternando los servidores "
        f"(el orden rota en cada ronda), mediana de cada carga; duró {data['elapsed_s']} s. "
        "Cada respuesta se verifica (estado, tamaños, contenido en disco y en la respuesta) "
        "antes de contar, así que un servidor roto no puede parecer rápido. "
        "Los números exactos de cada ronda están en `docs/benchmarks.json`.",
        "",
        "## La máquina",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} núcleos; memoria {m['memory']}; "
        f"disco {m['filesystem']} (los tres servidores escriben en la misma carpeta "
        "`/var/tmp`).",
        f"- {m['os']}, Python {m['python']}, WsgiDAV {m['wsgidav']}, cheroot {m['cheroot']}, "
        f"{m['apache']}.",
        (f"- Escribir 4 KiB y hacer `fsync` en ese disco tarda {data['fsync_4k_ms']:.1f} ms "
         "(mediana, medida al final del banco): Resguardo lo paga en cada subida, WsgiDAV y "
         "Apache nunca." if data.get("fsync_4k_ms") else ""),
        "- Cliente y servidores en la misma máquina, por 127.0.0.1: el cliente del banco "
        "(Python, `http.client` con conexiones persistentes) compite por los mismos dos "
        "núcleos, igual para los tres servidores.",
        "",
        "## Los servidores",
        "",
        f"- **WsgiDAV 4.4 sin cambios**: `FilesystemProvider`, autenticación Básica con su "
        f"`SimpleDomainController`, todo lo demás con sus valores por omisión (bloques de "
        f"8 KiB, bloqueos en memoria, sin gestor de propiedades), cheroot con {m['threads']} "
        "hilos.",
        f"- **Apache mod_dav_fs**: un proceso `mpm_event` con {m['threads']} hilos, "
        "autenticación Básica (`htpasswd -s`: Apache comprueba la contraseña en cada "
        "petición y bcrypt mediría el hash, no WebDAV), conexiones persistentes sin límite "
        "de peticiones.",
        f"- **Resguardo**: `resguardo serve` con la configuración por omisión (cheroot con "
        f"{m['threads']} hilos, SQLite, registro INFO), un espacio de plan 80G y un usuario "
        "creados con la CLI. Hace todo su trabajo en cada petición: autenticación argon2 "
        "con caché, aislamiento de espacios, cuota por SQL, subida a un temporal con "
        "`fsync` y reemplazo atómico, bloqueos y propiedades en la base de datos, índice "
        "de CFDI.",
        "",
        "## Resultados",
        "",
        "R/WsgiDAV y R/Apache: cuántas veces mejor es Resguardo (más de 1× = Resguardo "
        "gana; en las cargas medidas en ms es el cociente de tiempos al revés).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(HEADER))) + "|",
    ]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", f"![Resguardo frente a WsgiDAV y Apache]({png_name})", ""]
    md += [f"- {line}" for line in extra_lines(data)]
    md += [
        "",
        "## Las cargas",
        "",
        f"- Archivo grande: uno de {sz['big'] // 2**20} MiB, subido con `Content-Length` y "
        "bajado; se compara el SHA-256 en disco y en la respuesta.",
        f"- Archivos pequeños: {sz['small_count']} de {sz['small_size']} bytes, con 1 y con 8 "
        "clientes simultáneos (cada uno con su conexión); se comprueba cada archivo en disco "
        "y cada respuesta.",
        f"- PROPFIND Depth 1 (`allprop`) sobre carpetas de {sz['propfind_small']} y "
        f"{sz['propfind_large']} archivos creados directamente en disco (mediana de "
        f"{sz['propfind_repeats']} repeticiones por ronda); también con el cuerpo que "
        "envía el Explorador de Windows. Se comprueba que la respuesta lista exactamente "
        "los miembros con su tamaño.",
        f"- PROPFIND Depth 0: {sz['depth0_requests']} peticiones sobre un archivo, 8 clientes.",
        f"- COPY, MOVE y DELETE: {sz['ops']} archivos pequeños cada uno, un cliente.",
        f"- Alta estilo Windows: {sz['windows_files']} archivos con la secuencia del "
        "Explorador (PUT de 0 bytes, LOCK, PROPPATCH de las propiedades Win32, PUT con el "
        "token, UNLOCK). WsgiDAV sin gestor de propiedades contesta el PROPPATCH sin "
        "guardarlas (hace menos trabajo que los otros dos).",
        f"- CFDI: {sz['cfdi']} XML sintéticos timbrados (`../shared/tools/make_cfdi.py`, "
        "uno distinto por ronda porque un CFDI timbrado queda protegido); Resguardo los "
        "reconoce e indexa al guardarlos y el banco comprueba que estén en el índice.",
        f"- Escala (sólo Resguardo): PUT de {sz['scale_puts']} archivos de 4 KiB en un "
        f"espacio con 10 archivos y en otro con {sz['scale_files']:,} (creados en disco y "
        "recontados con `resguardo quota recount`), una petición a cada espacio por "
        "turno para que los altibajos del disco (cada subida termina en `fsync`) caigan "
        "sobre los dos por igual.".replace(",", " "),
        "- Memoria (sólo Resguardo): en un espacio de 8 MiB, una subida que declara 1 GiB "
        "(se envían 256 MiB), una por trozos (`chunked`) de 64 MiB y una que declara y "
        "envía 20 MiB, después de un primer acceso (comprobar una contraseña con argon2 "
        "ocupa unos 19 MiB un instante, y eso no es lo que se mide); se muestrea la RSS "
        "cada 5 ms y se comprueba que contestó 507 sin "
        "cambiar el uso ni dejar archivos. La memoria máxima de cada servidor es la RSS "
        "(de todo su árbol de procesos) muestreada cada 100 ms durante todo el banco.",
        "",
    ]
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists():
        md += [notes.read_text(encoding="utf-8").rstrip(), ""]
    path.write_text("\n".join(md), encoding="utf-8")
