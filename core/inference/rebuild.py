"""Converting an export made elsewhere whose program does not convert as it is (PaddleX's official PP-LiteSeg).

Two ways, both checked, both written into :func:`~segzoo.inference.export_cache.cached_onnx`'s
target, which then serves the directory like its own conversion:

* :func:`program_rewrite`: the card's ``export.program_rewrite`` rewrites the
  program's offending ops in place, and the rewritten program is converted,
  checked against the original (a fraction of a second of work);
* :func:`network_rebuild`: the export's weights are loaded into the plugin's
  own network, checked to give the program's labels, and that network is
  exported and converted (seconds: the network is built and traced).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, WeightsError
from ..models import network_from_export
from ..noise import quiet_export
from . import export as export_module
from .convert import Conversion
from .export_cache import work_dir

log = logging.getLogger("segzoo")


def network_rebuild(model_name: str, config: Any, deploy):
    """``rebuild(target, reason)`` for :func:`~segzoo.inference.export_cache.cached_onnx`: convert the plugin's own network with the export's weights.

    PaddleX's official PP-LiteSeg program pools adaptively, which paddle2onnx
    converts only at a fixed H×W; segzoo's plugin builds the same network
    with a pooling that converts with a dynamic one. The rebuild loads the
    export's parameters into the plugin's network
    (:func:`segzoo.models.network_from_export`), checks that both give the
    same labels on two random inputs (one whose size is no multiple of the
    pooling bins), exports it to a temporary directory and converts that
    (checked against Paddle as every conversion is) into ``target``. The
    temporary directory is a :func:`work_dir` of the cache.
    """

    def rebuild(target: Path, reason: str) -> None:
        log.info("%s: %s; converting the plugin's own network with the export's weights instead (once) ...",
                 model_name, reason)
        with Conversion() as conversion, work_dir("rebuild") as tmp:
            # the child imports paddle2onnx while the network is rebuilt (see segzoo.inference.convert)
            out = tmp / "export"
            _rebuilt_export(model_name, config, deploy, out)
            conversion.run(out / "inference.json", out / "inference.pdiparams", target)

    return rebuild


def program_rewrite(model_name: str, rewrite: str, deploy, fallback):
    """``rebuild(target, reason)`` for :func:`~segzoo.inference.export_cache.cached_onnx`: convert the export's own program, rewritten.

    ``rewrite`` is the card's ``export.program_rewrite`` (``"module:function"``):
    the function rewrites the loaded PIR program in place into the same
    function in ops that convert at any H×W (PP-LiteSeg: its adaptive
    poolings as matrix products) and returns how many ops it rewrote. The
    rewritten program is saved to a :func:`work_dir` and converted; the
    conversion is checked against the export's **original** program, not the
    rewritten one. No network is built or traced: a fraction of a second where
    :func:`network_rebuild` takes several. Where the function rewrites
    nothing, fails, or its conversion fails the check, ``fallback`` (the
    network rebuild) runs instead.
    """

    def rebuild(target: Path, reason: str) -> None:
        log.info("%s: %s; converting its program with %s rewritten (once) ...", model_name, reason, rewrite)
        try:
            with Conversion() as conversion, work_dir("rewrite") as tmp:
                count = _rewritten_export(rewrite, deploy, tmp)
                log.info("%s: %s rewrote %d op(s) of %s", model_name, rewrite, count, deploy.model_file)
                conversion.run(tmp / "inference.json", tmp / "inference.pdiparams", target,
                               reference=(deploy.model_file, deploy.params_file))
            return
        except (ExportError, WeightsError) as exc:
            log.info("%s: the rewritten program is not usable (%s)", model_name, exc)
        fallback(target, reason)

    return rebuild


def _rewritten_export(rewrite: str, deploy, out: Path) -> int:
    """Load ``deploy``'s program in static mode, apply ``rewrite`` to it, save it to ``out``; return the ops rewritten."""
    import importlib

    import paddle

    module_name, _, attr = rewrite.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ExportError(f"the card's program_rewrite {rewrite!r} cannot be loaded: {exc}") from exc
    prefix = deploy.model_file.with_suffix("")
    if deploy.params_file != prefix.with_suffix(".pdiparams"):
        raise ExportError(f"{deploy.params_file} is not {prefix.name}.pdiparams beside {deploy.model_file.name}")
    dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:  # the weights live in a scope of their own, freed with it; without Paddle's PIR "input out tensor" line
        with paddle.static.scope_guard(paddle.static.Scope()), quiet_export():
            executor = paddle.static.Executor(paddle.CPUPlace())
            try:
                program, _feeds, fetches = paddle.static.load_inference_model(str(prefix), executor)
            except Exception as exc:  # noqa: BLE001 - a program paddle cannot load
                raise ExportError(f"paddle cannot load {deploy.model_file}: {str(exc).splitlines()[0]}") from exc
            try:  # a plugin's function on paddle's program: any failure means "rebuild instead", not a crash
                count = int(function(program) or 0)
                if count:
                    ops = program.global_block().ops
                    feeds = [op.result(0) for op in ops if op.name() == "pd_op.data"]
                    # the fetch ops' operands, not the values loaded: a rewritten op's result may have been fetched
                    fetched = [op.operand_source(0) for op in ops if op.name() == "pd_op.fetch"] or fetches
                    paddle.static.save_inference_model(str(out / "inference"), feeds, fetched, executor, program=program)
            except Exception as exc:  # noqa: BLE001
                raise ExportError(f"{rewrite} failed on {deploy.model_file}: {type(exc).__name__}: {exc}") from exc
            if not count:
                raise ExportError(f"{rewrite} found nothing to rewrite in {deploy.model_file}")
    finally:
        if dynamic:
            paddle.disable_static()
    return count


def _rebuilt_export(model_name: str, config: Any, deploy, out: Path) -> None:
    """Export the plugin's network with the weights of ``deploy``'s program to ``out``, once both are checked
    to give the same labels."""
    import paddle

    prefix = deploy.model_file.with_suffix("")
    try:
        program = paddle.jit.load(str(prefix))
    except Exception as exc:  # noqa: BLE001 - a program paddle cannot load as a layer
        raise ExportError(f"paddle cannot load {deploy.model_file} as a network: {str(exc).splitlines()[0]}") from exc
    layer, fitted = network_from_export(model_name, config, prefix, program)
    rng = np.random.default_rng(0)
    for h, w in ((128, 128), (96, 136)):  # 1/32 feature maps of 4×4 and 3×5: bins that divide them, and bins that do not
        x = paddle.to_tensor(rng.standard_normal((1, 3, h, w)).astype(np.float32))
        want, got = program(x), layer(x)
        want = np.asarray((want[0] if isinstance(want, (list, tuple)) else want).numpy())
        got = got[0].argmax(1).numpy()
        want = want.argmax(1) if want.ndim == 4 else want.reshape(got.shape)
        agree = float((want == got).mean())
        if agree < 0.999:
            raise ExportError(f"the plugin's {model_name} with the weights of {deploy.model_file} differs from it "
                              f"at {w}×{h} (labels agree on {agree:.2%} of the pixels)")
    export_module.export_model(model_name, out, config=fitted, layer=layer, output_op=deploy.output_op)
