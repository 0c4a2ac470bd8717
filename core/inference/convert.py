"""ONNX conversion: paddle2onnx on an exported program, in a child process, checked against Paddle Inference.

``paddle2onnx`` aborts the whole process (``SIGABRT``) on a graph it cannot
convert, e.g. PP-LiteSeg's adaptive pooling with a dynamic H×W; in a child
that becomes an :class:`~segzoo.errors.ExportError` with paddle2onnx's own
message. ``optimize_tool`` is off: big models convert in seconds instead of
minutes (ONNX Runtime folds constants itself when it loads the model).

**Every conversion is checked** before it is written: the child runs the
ONNX model and Paddle Inference (plain kernels) on one random input and
compares them (:func:`validate_conversion`).

The child imports paddle, paddle2onnx and ONNX Runtime before it reads which
program to convert (about 1.5 s on 2 cores), so a caller that still has to
write the program starts it first (:class:`Conversion`) and the two overlap:
``network_rebuild`` does, while it exports the plugin's network.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DependencyError, ExportError
from ..fileio import atomic_write
from .engine_table import default_cpu_threads

log = logging.getLogger("segzoo")

#: ONNX opset asked of paddle2onnx (it raises it by itself where an op needs more)
OPSET = 13
#: seconds a conversion may take before it is stopped
CONVERT_TIMEOUT = 900


class Conversion:
    """A conversion child, started now; :meth:`run` hands it the program once that is written.

    Use it as a context manager: a child that was given nothing is stopped on
    exit. ``convert_to_onnx`` is one started and run at once.
    """

    def __init__(self) -> None:
        try:
            import paddle2onnx  # noqa: F401  (fail here, with the install hint, not in the child)
        except ImportError as exc:
            raise DependencyError(f"paddle2onnx is not importable ({exc}); install it: pip install paddle2onnx==2.1.0") from exc
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "segzoo.inference.convert", "convert", "--stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        )

    def run(self, model_file: Path, params_file: Path, out_file: Path, opset: int = OPSET,
            timeout: float = CONVERT_TIMEOUT, reference: Optional[tuple] = None) -> Path:
        """Convert ``model_file`` + ``params_file`` to ``out_file`` (written atomically, after the check).

        The check compares the ONNX model with the program converted, or with ``reference``
        (``(model_file, params_file)`` of another program that must compute the same: the one a rewritten
        program was made from).
        """
        out_file = Path(out_file)
        ref = [str(p) for p in reference] if reference is not None else None
        job = json.dumps([str(model_file), str(params_file), str(out_file), int(opset), ref])
        t0 = time.perf_counter()
        try:
            stdout, stderr = self.proc.communicate(job + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise ExportError(
                f"paddle2onnx did not convert {model_file} within {timeout:.0f} s; use the paddle engine for this model"
            ) from None
        done = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout, stderr)
        if done.returncode != 0 or not out_file.is_file():
            raise ExportError(f"the ONNX conversion of {model_file} is not usable: {_conversion_error(done)}")
        log.info("converted %s to %s in %.1f s", model_file, out_file, time.perf_counter() - t0)
        return out_file

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def __enter__(self) -> "Conversion":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def convert_to_onnx(model_file: Path, params_file: Path, out_file: Path, opset: int = OPSET,
                    timeout: float = CONVERT_TIMEOUT) -> Path:
    """Convert an exported Paddle program to ONNX with paddle2onnx, in a child process; write ``out_file`` atomically."""
    with Conversion() as conversion:
        return conversion.run(model_file, params_file, out_file, opset, timeout)


def _conversion_error(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or "") + "\n" + (proc.stdout or "")
    errors = [m.group(1).strip() for m in re.finditer(r"\[ERROR\]\[(?:Paddle2ONNX|segzoo)\]\s*(.*)", text)]
    if errors:
        return "; ".join(dict.fromkeys(errors))
    lines = [line.strip() for line in text.splitlines() if line.strip() and "Warning" not in line]
    tail = lines[-1] if lines else ""
    what = f"exit status {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
    return f"{what}{': ' + tail if tail else ''}"


def validate_conversion(model_file: str, params_file: str, onnx_bytes: bytes, dynamic_hw=(128, 160)) -> Optional[str]:
    """Compare the ONNX model with Paddle Inference (plain CPU kernels) on one random input; ``None`` if they agree.

    The input is the program's fixed ``H×W`` when it has one, else
    ``dynamic_hw``. Labels must agree on 99.9 % of the pixels; scores within
    5e-3 of their range (SeaFormer_base/large's float32 attention reaches
    1.4e-3 on random weights and inputs), with the same argmax on 99.9 %. (paddle2onnx turns
    an adaptive pooling whose input is not a multiple of its bins into a plain
    pooling that averages other windows, for instance: it converts, but the
    masks differ.)
    """
    import onnxruntime as ort
    from paddle import inference as pi

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = default_cpu_threads()
    opts.log_severity_level = 3
    h, w = dynamic_hw
    try:
        sess = ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        shape = sess.get_inputs()[0].shape  # ints where fixed, names or None where dynamic
        fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
        n = fixed[0] or 1
        h, w = fixed[2] or dynamic_hw[0], fixed[3] or dynamic_hw[1]
        x = np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32)
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    except Exception as exc:
        first = str(exc).strip().splitlines()
        return f"ONNX Runtime cannot run it at {w}×{h}: {first[0] if first else type(exc).__name__}"
    config = pi.Config(model_file, params_file)
    config.disable_gpu()
    config.disable_onednn()
    config.set_cpu_math_library_num_threads(default_cpu_threads())
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    want = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    if got.shape != want.shape:
        return f"it outputs {list(got.shape)}, Paddle {list(want.shape)} at {w}×{h}"
    if want.ndim == 4:
        rel = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))
        agree = float((got.argmax(1) == want.argmax(1)).mean())
        if rel > 5e-3 or agree < 0.999:
            return f"it differs from Paddle at {w}×{h}: scores by {rel:.1e} of their range, argmax on {1 - agree:.2%} of the pixels"
    else:
        agree = float((got == want).mean())
        if agree < 0.999:
            return f"it differs from Paddle at {w}×{h}: labels differ on {1 - agree:.2%} of the pixels"
    return None


# -- the child -----------------------------------------------------------------------------------
def _convert_main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segzoo.inference.convert")
    sub = parser.add_subparsers(dest="cmd", required=True)
    conv = sub.add_parser("convert", help="convert inference.json + inference.pdiparams to ONNX")
    conv.add_argument("model_file", nargs="?")
    conv.add_argument("params_file", nargs="?")
    conv.add_argument("out_file", nargs="?")
    conv.add_argument("--opset", type=int, default=OPSET)
    conv.add_argument("--stdin", action="store_true",
                      help="import everything first, then read [model_file, params_file, out_file, opset] as JSON")
    args = parser.parse_args(argv)
    reference = None
    import onnxruntime  # noqa: F401  (imported before the job arrives: see the module docstring)
    import paddle2onnx
    from paddle import inference  # noqa: F401

    if args.stdin:
        line = sys.stdin.readline()
        if not line.strip():  # the parent gave up before it had a program
            return 0
        args.model_file, args.params_file, args.out_file, args.opset, *rest = json.loads(line)
        reference = rest[0] if rest and rest[0] else None
    elif not (args.model_file and args.params_file and args.out_file):
        parser.error("give model_file, params_file and out_file, or --stdin")
    data = paddle2onnx.export(
        args.model_file,
        args.params_file,
        None,  # no save_file: return the bytes, with no optimize_tool pass
        opset_version=args.opset,
        auto_upgrade_opset=True,
        enable_onnx_checker=True,
        optimize_tool="None",
    )
    ref_model, ref_params = reference or (args.model_file, args.params_file)
    problem = validate_conversion(ref_model, ref_params, data)
    if problem:
        print(f"[ERROR][segzoo] {problem}", file=sys.stderr)
        return 3
    with atomic_write(args.out_file, "wb") as fh:
        fh.write(data)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the conversion child
    code = _convert_main()
    # the ONNX file is on disk (written atomically) and the parent reads only the streams and the status:
    # ending here skips tearing down paddle, paddle2onnx and ONNX Runtime (0.4 s of every conversion)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
