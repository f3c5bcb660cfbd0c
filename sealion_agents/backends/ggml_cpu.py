"""What the installed llama.cpp build does on this CPU: its extra weight buffer types.

llama.cpp can repack quantized weights into "extra buffer types" for faster CPU kernels.
On Intel CPUs with AMX (Sapphire Rapids and later) a build compiled with AMX registers an
"AMX" buffer type whose repacked matrix multiply crashes the process on multi-token
prompts (ggml-org/llama.cpp#20824, open). ``amx_repack_active`` finds out, at run time,
whether this process's llama.cpp would use it, by asking ggml's backend registry for the
CPU device's extra buffer types (and, should that API be missing, by reading llama.cpp's
system info for ``AMX_INT8 = 1``). The GGUF backend then loads models without extra buffer
types there, and only there: other CPUs keep the faster repacked kernels.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from typing import Any

__all__ = ["amx_repack_active", "cpu_extra_buffer_types", "system_info"]

logger = logging.getLogger(__name__)

_GGML_DEVICE_CPU = 0


def system_info(llama_cpp: Any) -> str:
    """llama.cpp's one-line description of the CPU features it was built with."""
    return bytes(llama_cpp.llama_print_system_info()).decode("utf-8", "replace")


def _ggml_library(llama_cpp: Any) -> Any:
    """The libllama handle that llama-cpp-python loaded.

    Symbol look-ups through it reach the very ggml libraries it is linked to, never a second
    copy with a registry of its own.
    """
    return getattr(getattr(llama_cpp, "llama_cpp", None), "_lib", None)


def cpu_extra_buffer_types(llama_cpp: Any) -> list[str] | None:
    """Names of the CPU device's extra buffer types (e.g. ``["AMX", "CPU_REPACK"]``).

    None when this build of llama.cpp does not expose ggml's backend registry.
    """
    try:
        lib = _ggml_library(llama_cpp)
        if lib is None:
            return None

        def function(name: str, restype: Any, *argtypes: Any) -> Any:
            found = lib[name]  # a fresh function object: llama-cpp-python's stay untouched
            found.restype, found.argtypes = restype, list(argtypes)
            return found

        voidp = ctypes.c_void_p
        dev_count = function("ggml_backend_dev_count", ctypes.c_size_t)
        dev_get = function("ggml_backend_dev_get", voidp, ctypes.c_size_t)
        dev_type = function("ggml_backend_dev_type", ctypes.c_int, voidp)
        dev_reg = function("ggml_backend_dev_backend_reg", voidp, voidp)
        proc_address = function("ggml_backend_reg_get_proc_address", voidp, voidp, ctypes.c_char_p)
        buft_name = function("ggml_backend_buft_name", ctypes.c_char_p, voidp)
        for index in range(dev_count()):
            device = dev_get(index)
            if dev_type(device) != _GGML_DEVICE_CPU:
                continue
            address = proc_address(dev_reg(device), b"ggml_backend_dev_get_extra_bufts")
            if not address:
                return []
            get_extra = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
            table = get_extra(device)
            names: list[str] = []
            i = 0
            while table and table[i]:
                names.append(buft_name(table[i]).decode("utf-8", "replace"))
                i += 1
            return names
        return []
    except (OSError, AttributeError, ValueError):
        logger.debug("ggml's backend registry is not reachable", exc_info=True)
        return None


@functools.cache
def amx_repack_active() -> bool:
    """True when llama.cpp in this process would repack weights for AMX."""
    from sealion_agents.errors import require

    llama_cpp = require("llama_cpp", extra="gguf", feature="The GGUF runtime")
    names = cpu_extra_buffer_types(llama_cpp)
    if names is not None:
        active = "AMX" in names
    else:
        active = "AMX_INT8 = 1" in system_info(llama_cpp)
    if active:
        logger.info(
            "llama.cpp uses AMX weight repacking on this CPU, which crashes on quantized models "
            "(ggml-org/llama.cpp#20824): loading GGUF models without extra buffer types"
        )
    return active
