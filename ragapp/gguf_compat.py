"""GGUF files that an older llama.cpp refuses only for the name of their pre-tokenizer.

llama.cpp picks a BPE pre-tokenizer (the regex that splits text before merging) by the
``tokenizer.ggml.pre`` name in the GGUF, and several names select the same regex and
flags. gpt4all 2.8.2 carries a mid-2024 llama.cpp that predates "smollm" (SmolLM2, our
bundled model) but knows "command-r", which llama.cpp's ``src/llama-vocab.cpp`` handles
identically: the same two regexes (``\\p{N}``, then GPT-2's) and ``clean_spaces = false``.

A derived copy with only that string changed is therefore the same model. It is written
once into the cache, keyed by the source file's path, size and mtime, and kept only if
tokenizing a varied sample gives the same token ids as the original (and as every extra
tokenizer the caller passes, e.g. the old runtime's own).
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragapp.errors import BackendError

log = logging.getLogger(__name__)

PRE_KEY = "tokenizer.ggml.pre"
# A name gpt4all 2.8.2's llama.cpp refuses -> one it knows that llama.cpp treats the same.
PRE_ALIASES = {"smollm": "command-r"}
DERIVE_VERSION = "1"  # bump when the derivation changes, so stale copies are rebuilt

# Exercises every branch of the shared regex: letters, digit runs (split one by one),
# contractions, punctuation runs, whitespace runs, code, non-ASCII, and chat markers.
SAMPLE_TEXT = (
    "The cooperative's 2025 income was £1,284,600 (up 7.5%); members don't pay fees!\n"
    "We'll re-check it: isn't 3.14159 ≈ π? They'd say 1234567890 and 12:30pm.\n\n"
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # O(2^n)\n"
    "\tTabs\tand    spaces   ...  \"quotes\" 'single' `ticks` {braces} [1] <tag/> a&&b || c\n"
    "Ünïcödé: Größe, café, naïve, Ελληνικά, русский, 日本語のテキスト, 中文, 한국어, العربية, 🙂👍🏽\n"
    "<|im_start|>user\nWhat's new?<|im_end|>\n<|im_start|>assistant\n"
)

_MAGIC = b"GGUF"
# GGUF value types: fixed sizes; 8 = string, 9 = array
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class GGUFLayout:
    """Where things are in a GGUF file's header (all offsets in bytes from the start)."""

    version: int
    strings: dict[str, tuple[int, int, str]]  # string KV key -> (start, end, value) of its value
    tensor_infos_end: int
    data_start: int
    alignment: int


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str:
        n = self.take("<Q")
        raw = bytes(self.buf[self.pos : self.pos + n])
        if len(raw) != n:
            raise ValueError("truncated string")
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_value(self, vtype: int) -> None:
        if vtype in _SCALAR_SIZES:
            self.pos += _SCALAR_SIZES[vtype]
        elif vtype == _STRING:
            n = self.take("<Q")  # read before pos is, as `pos += take()` would not
            self.pos += n
        elif vtype == _ARRAY:
            etype, count = self.take("<I"), self.take("<Q")
            if etype in _SCALAR_SIZES:
                self.pos += _SCALAR_SIZES[etype] * count
            else:
                for _ in range(count):
                    self.skip_value(etype)
        else:
            raise ValueError(f"unknown GGUF value type {vtype}")
        if self.pos > len(self.buf):
            raise ValueError("truncated header")


def read_layout(path: Path) -> GGUFLayout:
    """Parse a GGUF header (v2/v3, little-endian): its string KVs and where the data starts."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        r = _Reader(buf)
        if bytes(buf[:4]) != _MAGIC:
            raise ValueError("not a GGUF file")
        r.pos = 4
        version = r.take("<I")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        n_tensors, n_kv = r.take("<Q"), r.take("<Q")
        strings: dict[str, tuple[int, int, str]] = {}
        alignment = _DEFAULT_ALIGNMENT
        for _ in range(n_kv):
            key = r.string()
            vtype = r.take("<I")
            start = r.pos
            if vtype == _STRING:
                value = r.string()
                strings[key] = (start, r.pos, value)
            elif key == "general.alignment" and vtype == _UINT32:
                alignment = r.take("<I")
            else:
                r.skip_value(vtype)
        for _ in range(n_tensors):
            r.string()
            n_dims = r.take("<I")
            r.pos += 8 * n_dims + 4 + 8  # dims, type, offset (relative to the data start)
        tensor_infos_end = r.pos
        if tensor_infos_end > len(buf):
            raise ValueError("truncated tensor infos")
    return GGUFLayout(
        version=version,
        strings=strings,
        tensor_infos_end=tensor_infos_end,
        data_start=_align(tensor_infos_end, alignment),
        alignment=alignment,
    )


def _align(offset: int, alignment: int) -> int:
    return offset + (-offset % alignment)


def _encode_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def write_with_string(src: Path, dst: Path, key: str, value: str) -> None:
    """Copy ``src`` to ``dst`` with the string KV ``key`` set to ``value``; the header is
    re-padded so the tensor data, copied byte for byte, stays aligned (tensor offsets are
    relative to the data start, so they stay valid)."""
    layout = read_layout(src)
    if key not in layout.strings:
        raise ValueError(f"{src.name} has no string key {key!r}")
    start, end, _ = layout.strings[key]  # the value: its u64 length, then its bytes
    with src.open("rb") as fin, dst.open("wb") as fout:
        head = fin.read(layout.tensor_infos_end)
        new_head = head[:start] + _encode_string(value) + head[end:]
        fout.write(new_head)
        fout.write(b"\0" * (-len(new_head) % layout.alignment))
        fin.seek(layout.data_start)
        shutil.copyfileobj(fin, fout, 16 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    copied = read_layout(dst)
    if dst.stat().st_size - copied.data_start != src.stat().st_size - layout.data_start:
        raise ValueError(f"the copy of {src.name} does not hold the same tensor data")


Tokenize = Callable[[Path, str], list[int]]


@dataclass
class NativeOutput:
    text: str = ""


@contextmanager
def quiet_native_stderr() -> Iterator[NativeOutput]:
    """Capture what native libraries (llama.cpp, gpt4all) write to file descriptor 2,
    which Python's own redirection can't reach; ``.text`` holds it once the block ends."""
    output = NativeOutput()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield output
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            output.text = sink.read().decode("utf-8", errors="replace")


def open_vocab(path: Path) -> Any:
    """A ``llama_cpp.Llama`` with only the vocabulary and metadata of ``path`` loaded (no
    weights), its native log kept off the terminal."""
    import llama_cpp

    with quiet_native_stderr():
        return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)


def llama_cpp_tokens(path: Path, text: str) -> list[int]:
    """Token ids of ``text`` by llama-cpp-python's tokenizer of ``path`` (special tokens parsed)."""
    vocab = open_vocab(path)
    try:
        return list(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))
    finally:
        vocab.close()


def pre_tokenizer(path: Path) -> str | None:
    entry = read_layout(path).strings.get(PRE_KEY)
    return entry[2] if entry else None


def derived_name(src: Path, pre: str) -> str:
    st = src.stat()
    key = f"{DERIVE_VERSION}|{src.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{src.stem}.{pre}-{digest}.gguf"


def compatible_gguf(src: Path, cache_dir: Path, checks: Sequence[Tokenize] = ()) -> Path:
    """``src``, or a verified copy of it whose pre-tokenizer is named by its alias.

    Only the names in ``PRE_ALIASES`` are rewritten; any other file is returned as is. The
    reference is llama-cpp-python's tokenization of ``SAMPLE_TEXT`` with ``src``; a new copy
    must give exactly the same ids under llama-cpp-python and under each of ``checks`` (a
    function (path, text) -> ids, run on the copy), else it is deleted and BackendError
    raised.
    """
    try:
        pre = pre_tokenizer(src)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read the GGUF header of {src}: {exc}") from None
    if pre not in PRE_ALIASES:
        return src
    alias = PRE_ALIASES[pre]
    target = cache_dir / "gguf" / derived_name(src, alias)
    if target.is_file():
        return target
    # gpt4all finds a model by its file name, so the partial copy keeps the .gguf suffix.
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial.gguf")
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_with_string(src, partial, PRE_KEY, alias)
        except OSError as exc:
            raise BackendError(
                f"cannot write a copy of {src.name} in {target.parent}: {exc}"
            ) from None
        want = llama_cpp_tokens(src, SAMPLE_TEXT)
        for check in (llama_cpp_tokens, *checks):
            got = check(partial, SAMPLE_TEXT)
            if got != want:
                first = next(
                    (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
                    min(len(want), len(got)),
                )
                raise BackendError(
                    f"{src.name}: pre-tokenizer {alias!r} does not tokenize like {pre!r} "
                    f"(first difference at token {first} of {len(want)}); not using a copy"
                )
        os.replace(partial, target)  # atomic: no half-written or unverified copy is ever used
    finally:
        partial.unlink(missing_ok=True)
    log.info("%s: pre-tokenizer %r written as %r in %s (verified)", src.name, pre, alias, target)
    return target
