"""segzoo against its peers, measured in one run on one machine.

    python benchmarks/run.py                       # the full table (about 30 min on 2 cores)
    python benchmarks/run.py --models PP-LiteSeg-T --sizes 512x512 --repeat 3   # a quick look

For each model and image size, every configuration runs in its own process
(so its peak RSS is its own), on the same images and the same seeded random
weights (nothing is downloaded), with the same thread count:

* ``segzoo-default`` (``create_model`` with no ``engine=``: what users get),
  ``segzoo-dygraph``, ``segzoo-paddle`` (Paddle Inference + oneDNN),
  ``segzoo-onnxruntime``, ``segzoo-openvino``, ``segzoo-openvino:bf16`` and
  ``segzoo-openvino:int8`` (the same program quantized by NNCF, calibrated on
  16 drawn images of the first size, see ``segzoo.inference.bench.int8_export``):
  ``segzoo.create_model(...).predict(path)``; directory throughput with
  pipelining (``prefetch=2``) and without;
* ``paddleseg``: paddleseg 2.8.0's own model, transforms and
  ``core.infer.inference`` (see ``benchmarks/peers.py``);
* ``paddlex-default`` and ``paddlex-mkldnn``: PaddleX 3.7.2's predictor on the
  program PaddleX ships for the model (paddleseg's graph with the same weights;
  segzoo's engines but dygraph run that directory too, as a user of
  ``create_model(NAME)`` does), in its default mode and with
  ``engine_config={"run_mode": "mkldnn", "cpu_threads": N, "delete_pass":
  ["onednn_placement_pass"]}``. PaddleX lives in ``benchmarks/.venv-paddlex``
  (created on first use: ``python -m venv`` + ``pip install "paddlex[cv]==3.7.2"
  paddlepaddle==<segzoo's>``, see ``benchmarks/README.md``).

Per-image latency is the median of ``--repeat`` calls after ``--warmup``, from
the image path to the label map (read, pre-process, infer, post-process).
Each configuration's first mask is compared with segzoo-dygraph's (the
"agree" column) to show that every peer ran the same weights.

Prints the table and the ratios segzoo-best / PaddleX-best and segzoo-best /
paddleseg, and writes ``benchmarks/results/<date>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-paddlex"
PADDLEX_REQUIREMENT = "paddlex[cv]==3.7.2"
DEFAULT_MODELS = ("PP-LiteSeg-T", "SegFormer-B0", "SeaFormer_tiny", "SegFormer-B2")
LARGE = {"SegFormer-B2", "SegFormer-B3", "SegFormer-B4", "SegFormer-B5", "OCRNet_HRNet-W48", "Deeplabv3-R101"}
#: segzoo's configurations: "default" is create_model with no engine= (what users get); ENGINE:PRECISION another precision
SEGZOO_ENGINES = ("default", "dygraph", "paddle", "onnxruntime", "openvino", "openvino:bf16", "openvino:int8")


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_paddlex(log) -> Path:
    """PaddleX's virtual environment (created and installed on first use); its interpreter."""
    python = venv_python()
    ok = python.exists() and subprocess.run(
        [str(python), "-c", "import paddlex, segzoo.inference.bench"], capture_output=True, env={**os.environ, "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True"}
    ).returncode == 0
    if ok:
        return python
    log(f"creating {VENV} and installing {PADDLEX_REQUIREMENT} (downloads from PyPI) ...")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    from importlib import metadata

    paddle = f"paddlepaddle=={metadata.version('paddlepaddle')}"  # the same Paddle as segzoo runs on
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", PADDLEX_REQUIREMENT, paddle, "pluggy"], check=True)
    # the peer workers time with segzoo.inference.bench's helpers: segzoo itself, without its engines
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(HERE.parent)], check=True)
    return python


def versions(paddlex_python=None) -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("segzoo", "paddlepaddle", "paddleseg", "onnxruntime", "paddle2onnx", "numpy", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if paddlex_python:
        proc = subprocess.run([str(paddlex_python), "-c", "from importlib import metadata as m; print(m.version('paddlex'))"],
                              capture_output=True, text=True)
        out["paddlex"] = proc.stdout.strip() or "?"
    return out


def machine() -> dict:
    from segzoo.inference.auto import cpu_name
    from segzoo.inference.precision import cpu_flags

    out = {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
           "isa_flags": sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma")))}
    caps = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "OV_CPU_MAX_ISA") if os.environ.get(k)}
    if caps:  # an emulated CPU: oneDNN (Paddle, OpenVINO) and OpenVINO's own kernels capped to this ISA
        out["isa_cap"] = caps
    return out


def paddleseg_graph(layer):
    """``layer`` as paddleseg builds it, whose export is PaddleX's official program; segzoo's plugins export
    faster equivalents (PP-LiteSeg's shape-free pooling, SegFormer's folded decoder)."""
    import paddle

    from segzoo_plugins.ppliteseg.pooling import shape_free_pool_class
    from segzoo_plugins.segformer.decoder import segformer_class

    if type(layer) is segformer_class(type(layer).__mro__[1]):
        layer.__class__ = type(layer).__mro__[1]
    pool = shape_free_pool_class()
    for _name, parent in layer.named_sublayers(include_self=True):
        for key, child in list(parent._sub_layers.items()):
            if isinstance(child, pool):
                parent._sub_layers[key] = paddle.nn.AdaptiveAvgPool2D(child.bins)
    return layer


def paddlex_export(model: str, out: Path, config, layer) -> Path:
    """``layer``'s weights in the program PaddleX ships for ``model`` (paddleseg's graph, no ``segzoo:`` section)."""
    import yaml

    from segzoo.inference.export import export_model

    export = export_model(model, out, config=config, layer=paddleseg_graph(layer))
    data = yaml.safe_load((export / "inference.yml").read_text(encoding="utf-8"))
    data.pop("segzoo", None)
    (export / "inference.yml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return export


def prepare(model: str, sizes: list, work: Path, log) -> dict:
    """Seeded weights; the program PaddleX ships for them, which PaddleX and segzoo run (as a user with the
    official model does: segzoo converts it its own way); fixed-shape exports where a model needs them."""
    import warnings

    warnings.simplefilter("ignore")
    import paddle

    import segzoo
    from segzoo.inference.export import export_model
    from segzoo.inference.modeldir import resolve_model_dir
    from segzoo.inference.onnx import export_onnx
    from segzoo.inference.sizes import ceil_to
    from segzoo.weights import save_weights

    registry = segzoo.get_registry()
    card = registry.card(model)
    config = registry.config(model)
    paddle.seed(0)
    layer = registry.build_model(model, config)
    layer.eval()
    weights = save_weights(layer, work / "weights" / "model.pdparams")
    static_hw = {}
    onnx_dirs = {}
    for size in sizes:
        if card.export.onnx_static_hw:  # one fixed-shape export per size, as one deploys such a model on ONNX
            h, w = ceil_to(size[1], card.size_divisor), ceil_to(size[0], card.size_divisor)
            target = work / f"export_{w}x{h}"
            if not target.exists():
                export_model(model, target, config=config, layer=layer, input_shape=[1, 3, h, w])
            static_hw[size] = target
    export = paddlex_export(model, work / "export", config, layer)  # last: it changes the layer's classes
    for size in sizes:
        onnx_dirs[size] = static_hw.get(size, export)
        log(f"  converting {onnx_dirs[size].name} to ONNX ...")
        export_onnx(model, config, resolve_model_dir(onnx_dirs[size]).deploy)
    return {"weights": str(weights), "export": str(export), "onnx": {s: str(d) for s, d in onnx_dirs.items()},
            "num_classes": int(config.num_classes), "static_hw": bool(static_hw)}


def int8_source(model: str, src: dict, work: Path, size, threads: int, log):
    """The PaddleX program carrying an INT8 model quantized by NNCF on drawn images (once per model), or None."""
    from segzoo.inference.bench import int8_export

    if src["static_hw"]:
        return None  # converted per input size: not quantized
    if "int8" not in src:
        log(f"  quantizing {model} to INT8 (NNCF, drawn calibration images) ...")
        src["int8"] = int8_export(model, src["export"], work, size, threads)
    return src["int8"]


def configs(model: str, size, src: dict, paddlex_python, threads: int) -> list:
    out = []
    for engine in SEGZOO_ENGINES:
        name, _, precision = engine.partition(":")
        model_dir = {"dygraph": src["weights"], "paddle": src["export"]}.get(name, src["onnx"][size])
        if precision == "int8":
            model_dir = src.get("int8_for", {}).get(size)
            if model_dir is None:
                continue
        spec = {"kind": "segzoo", "engine": None if name == "default" else name, "precision": precision or None,
                "model_dir": model_dir}
        out.append(("segzoo-" + engine, spec, None))
    out.append(("paddleseg", {"kind": "paddleseg", "weights": src["weights"], "num_classes": src["num_classes"]}, "peers"))
    if paddlex_python:
        out.append(("paddlex-default", {"kind": "paddlex", "model_dir": src["export"]}, "paddlex"))
        mkldnn = {"run_mode": "mkldnn", "cpu_threads": threads, "delete_pass": ["onednn_placement_pass"]}
        out.append(("paddlex-mkldnn", {"kind": "paddlex", "model_dir": src["export"], "engine_config": mkldnn}, "paddlex"))
    return out


def agreement(mask_a: Path, mask_b: Path):
    import numpy as np

    if not (mask_a.is_file() and mask_b.is_file()):
        return None
    a, b = np.load(mask_a), np.load(mask_b)
    return float((a == b).mean()) if a.shape == b.shape else 0.0


def summarize(rows: list) -> list:
    """Per model and size: segzoo-best and the ratios to PaddleX-best and paddleseg."""
    out = []
    keys = sorted({(r["model"], r["size"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for model, size in keys:
        group = [r for r in rows if r["model"] == model and r["size"] == size and "error" not in r]

        def best(prefix, field="latency_s", low=True):
            # INT8 changes the model (its own column): segzoo-best is fp32 or bf16, as before
            cands = [r for r in group if r["config"].startswith(prefix) and r.get(field)
                     and (prefix.endswith(":int8") or not r["config"].endswith(":int8"))]
            if not cands:
                return None
            return (min if low else max)(cands, key=lambda r: r[field])

        sz, px, ps = best("segzoo-"), best("paddlex-"), best("paddleseg")
        default, bf16, int8 = best("segzoo-default"), best("segzoo-openvino:bf16"), best("segzoo-openvino:int8")
        szt, pxt = best("segzoo-", "throughput_ips", low=False), best("paddlex-", "throughput_ips", low=False)
        out.append({
            "model": model, "size": size,
            "segzoo_best": sz and sz["config"], "segzoo_best_s": sz and sz["latency_s"],
            "paddlex_best": px and px["config"], "paddlex_best_s": px and px["latency_s"],
            "paddleseg_s": ps and ps["latency_s"],
            "latency_vs_paddlex": sz and px and sz["latency_s"] / px["latency_s"],
            "latency_vs_paddleseg": sz and ps and sz["latency_s"] / ps["latency_s"],
            "throughput_vs_paddlex": szt and pxt and szt["throughput_ips"] / pxt["throughput_ips"],
            "default_engine": default and default.get("engine_used"),
            "default_vs_paddlex": default and px and default["latency_s"] / px["latency_s"],
            "bf16_vs_paddlex": bf16 and px and bf16["latency_s"] / px["latency_s"],
            "bf16_agree": bf16 and bf16.get("agree"),
            "int8_vs_paddlex": int8 and px and int8["latency_s"] / px["latency_s"],
            "int8_vs_fp32": int8 and _fp32(group) and int8["latency_s"] / _fp32(group)["latency_s"],
            "int8_agree": int8 and int8.get("agree"),
        })
    return out


def _fp32(group: list):
    return next((r for r in group if r["config"] == "segzoo-openvino"), None)


def print_table(rows: list, summary: list) -> None:
    from prettytable import PrettyTable

    t = PrettyTable(["model", "size", "config", "latency ms", "img/s", "img/s no pipeline", "peak RSS MB", "agree", "load avg"])
    for r in rows:
        if "error" in r:
            t.add_row([r["model"], r["size"], r["config"], r["error"][:70], "-", "-", "-", "-", f"{r['load_before']:.1f}"])
            continue
        agree = "-" if r.get("agree") is None else f"{100 * r['agree']:.2f} %"
        serial = r.get("throughput_serial_ips")
        t.add_row([r["model"], r["size"], r["config"], f"{1000 * r['latency_s']:.0f}", f"{r['throughput_ips']:.2f}",
                   "-" if serial is None else f"{serial:.2f}", f"{r['peak_rss_mb']:.0f}", agree, f"{r['load_before']:.1f}"])
    t.align = "r"
    print(t)
    s = PrettyTable(["model", "size", "segzoo best", "segzoo ms", "PaddleX best", "PaddleX ms", "paddleseg ms",
                     "segzoo/PaddleX", "segzoo/paddleseg", "throughput segzoo/PaddleX", "default/PaddleX",
                     "bf16/PaddleX (agree)", "int8/PaddleX (agree)", "int8/openvino fp32"])
    for x in summary:
        agree = "" if x.get("bf16_agree") is None else f" ({100 * x['bf16_agree']:.2f} %)"
        s.add_row([x["model"], x["size"], (x["segzoo_best"] or "-").replace("segzoo-", ""), _ms(x["segzoo_best_s"]),
                   (x["paddlex_best"] or "crashed").replace("paddlex-", ""), _ms(x["paddlex_best_s"]), _ms(x["paddleseg_s"]),
                   _ratio(x["latency_vs_paddlex"]), _ratio(x["latency_vs_paddleseg"]), _ratio(x["throughput_vs_paddlex"]),
                   _ratio(x.get("default_vs_paddlex")), _ratio(x.get("bf16_vs_paddlex")) + agree,
                   _ratio(x.get("int8_vs_paddlex")) + _agree(x.get("int8_agree")), _ratio(x.get("int8_vs_fp32"))])
    s.align = "r"
    print(s)


def _agree(v):
    return "" if v is None else f" ({100 * v:.2f} %)"


def _ms(v):
    return "-" if v is None else f"{1000 * v:.0f}"


def _ratio(v):
    return "-" if v is None else f"{v:.2f}×"


def markdown(result: dict) -> str:
    """The README table of a results JSON: latency, throughput, memory, and the ratios."""
    v, m = result["versions"], result["machine"]
    lines = [
        f"Measured {result['date'][:16].replace('T', ' ')} on {m['cpu']}, {m['cores']} cores, {result['threads']} threads; "
        f"segzoo {v.get('segzoo')}, paddlepaddle {v.get('paddlepaddle')}, onnxruntime {v.get('onnxruntime')}, "
        f"paddle2onnx {v.get('paddle2onnx')}, paddleseg {v.get('paddleseg')}, paddlex {v.get('paddlex', '-')}; "
        f"load average {min(r['load_before'] for r in result['rows']):.1f}–{max(r['load_before'] for r in result['rows']):.1f}.",
        "",
        "| model | size | config | latency ms | img/s | img/s no pipeline | peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['size']} | {r['config']} | {r['error'][:60]} | | | |")
            continue
        serial = r.get("throughput_serial_ips")
        lines.append(f"| {r['model']} | {r['size']} | {r['config']} | {1000 * r['latency_s']:.0f} | "
                     f"{r['throughput_ips']:.2f} | {'-' if serial is None else f'{serial:.2f}'} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "| model | size | segzoo best | segzoo / PaddleX best (latency) | segzoo / paddleseg (latency) | "
              "segzoo / PaddleX (throughput) | default engine / PaddleX | OpenVINO bf16 / PaddleX (agree) |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for x in result["summary"]:
        agree = "" if x.get("bf16_agree") is None else f" ({100 * x['bf16_agree']:.2f} %)"
        lines.append(f"| {x['model']} | {x['size']} | {(x['segzoo_best'] or '-').replace('segzoo-', '')} | "
                     f"{_ratio(x['latency_vs_paddlex'])} | {_ratio(x['latency_vs_paddleseg'])} | "
                     f"{_ratio(x['throughput_vs_paddlex'])} | {_ratio(x.get('default_vs_paddlex'))} "
                     f"({x.get('default_engine') or '-'}) | {_ratio(x.get('bf16_vs_paddlex'))}{agree} |")
    return "\n".join(lines)


def plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segzoo.fileio import atomic_path

    groups = sorted({(r["model"], r["size"]) for r in rows})
    names = list(dict.fromkeys(r["config"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(groups)), 5))
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        xs, ys = [], []
        for i, g in enumerate(groups):
            r = next((r for r in rows if (r["model"], r["size"]) == g and r["config"] == name), None)
            if r and "error" not in r:
                xs.append(i + j * width)
                ys.append(1000 * r["latency_s"])
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{m}\n{s}" for m, s in groups], fontsize=8)
    ax.set_ylabel("median latency per image, ms (log)")
    ax.set_yscale("log")
    ax.set_title("segzoo vs paddleseg vs PaddleX (CPU; missing bar = crashed or n/a)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from segzoo.inference.bench import parse_wh, run_worker, write_images

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--sizes", nargs="+", default=["512x512", "1024x512"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10, help="timed runs per configuration (small models)")
    p.add_argument("--repeat-large", type=int, default=3, help="timed runs for the large models")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--images", type=int, default=8, help="images in the throughput directory (small models)")
    p.add_argument("--images-large", type=int, default=3)
    p.add_argument("--no-paddlex", action="store_true", help="skip PaddleX (no venv, no download)")
    p.add_argument("--only", nargs="+", help="only these configurations (e.g. segzoo-onnxruntime paddlex-mkldnn)")
    p.add_argument("--out", default=str(HERE / "results"), help="directory of the JSON and PNG results")
    p.add_argument("--markdown", metavar="RESULTS.json", help="print the markdown tables of a results file and exit")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    sizes = [parse_wh(s) for s in args.sizes]
    paddlex_python = None if args.no_paddlex else ensure_paddlex(log)
    started = dt.datetime.now()
    rows = []
    with tempfile.TemporaryDirectory(prefix="segzoo-peers-") as tmp:
        work = Path(tmp)
        env = {
            "SEGZOO_HOME": str(work / "segzoo_home"),  # conversions of this run only
            "SEG_HOME": str(work / "seg_home"),
            "MPLCONFIGDIR": str(work / "mpl"),
            "PADDLE_PDX_CACHE_HOME": str(work / "pdx_home"),
            "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True",
        }
        os.environ.update(env)
        for model in args.models:
            large = model in LARGE
            log(f"{model}: preparing weights and exports ...")
            src = prepare(model, sizes, work / model, log)
            for size in sizes:
                tag = f"{size[0]}x{size[1]}"
                image = write_images(work / model / f"one_{tag}", size, 1, seed=1)[0]
                if not args.only or "segzoo-openvino:int8" in args.only:
                    src.setdefault("int8_for", {})[size] = int8_source(model, src, work / model, size, args.threads, log)
                images_dir = work / model / f"dir_{tag}"
                write_images(images_dir, size, args.images_large if large else args.images, seed=2)
                for name, spec, runner in configs(model, size, src, paddlex_python, args.threads):
                    if args.only and name not in args.only:
                        continue
                    mask = work / model / f"mask_{tag}_{name}.npy"
                    spec.update(model=model, image=str(image), images_dir=str(images_dir), threads=args.threads,
                                repeat=args.repeat_large if large else args.repeat,
                                warmup=1 if large else args.warmup, mask_out=str(mask))
                    load_before = os.getloadavg()[0]
                    log(f"  {model} {tag} {name} (load {load_before:.1f}) ...")
                    if runner is None:
                        res = run_worker(spec, env=env)
                    else:
                        python = str(paddlex_python) if runner == "paddlex" else sys.executable
                        res = run_worker(spec, python=python, module=[str(HERE / "peers.py")], env=env)
                    res.update(model=model, size=tag, config=name, load_before=load_before,
                               load_after=os.getloadavg()[0])
                    if "error" not in res:
                        res["agree"] = agreement(work / model / f"mask_{tag}_segzoo-dygraph.npy", mask)
                    rows.append(res)
    summary = summarize(rows)
    out = Path(args.out)
    stamp = started.strftime("%Y-%m-%d")
    from segzoo.fileio import write_json

    result = {
        "date": started.isoformat(timespec="seconds"), "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": machine(), "versions": versions(paddlex_python), "threads": args.threads,
        "rows": rows, "summary": summary,
    }
    json_path = write_json(out / f"{stamp}.json", result)
    plot(rows, out / f"{stamp}.png")
    print_table(rows, summary)
    log(f"wrote {json_path} and {out / (stamp + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
