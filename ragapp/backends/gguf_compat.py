"""GGUF files that an older llama.cpp refuses only for the name of their pre-tokenizer.

llama.cpp picks a BPE pre-tokenizer (the regex that splits text before merging) by the
``tokenizer.ggml.pre`` name in the GGUF, and several names select the same regex and
flags. gpt4all 2.8.2 carries a mid-2024 llama.cpp that predates "smollm" (SmolLM2, our
bundled model) but knows "command-r", which llama.cpp's ``src/llama-vocab.cpp`` handles
identically: the same two regexes (``\\p{N}``, then GPT-2's) and ``clean_spaces = false``.

A derived copy with only that string changed is therefore the same model. It is read and
written with llama.cpp's own ``gguf`` package (as its ``gguf_new_metadata.py`` does), then
checked: every other metadata entry and every tensor's data byte for byte as in the source.
It is written once into the cache, keyed by the source file's path, size and mtime, and
kept only if tokenizing a varied sample gives the same token ids as the original (and as
every extra tokenizer the caller passes, e.g. the old runtime's own).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from ragapp.errors import BackendError

log = logging.getLogger(__name__)

PRE_KEY = "tokenizer.ggml.pre"
# A name gpt4all 2.8.2's llama.cpp refuses -> one it knows that llama.cpp treats the same.
PRE_ALIASES = {"smollm": "command-r"}
DERIVE_VERSION = "2"  # bump when the derivation changes, so stale copies are rebuilt

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

_STRING = gguf.GGUFValueType.STRING
_ARRAY = gguf.GGUFValueType.ARRAY


def read_gguf(path: Path) -> gguf.GGUFReader:
    """``path`` parsed by gguf-py's reader (memory-mapped, read-only); a malformed file is a
    ValueError, as gguf-py reports truncation and duplicates as IndexError/KeyError."""
    try:
        return gguf.GGUFReader(path, "r")
    except (LookupError, OverflowError) as exc:
        raise ValueError(f"malformed GGUF: {exc}") from None


def _string(reader: gguf.GGUFReader, key: str) -> str | None:
    field = reader.get_field(key)
    return field.contents() if field is not None and field.types == [_STRING] else None


def _kv_records(reader: gguf.GGUFReader) -> dict[str, bytes]:
    """Each metadata entry's bytes as stored (key, type, value), by key; gguf-py's virtual
    ``GGUF.*`` fields (version, counts) are left out."""
    return {
        name: b"".join(part.tobytes() for part in field.parts)
        for name, field in reader.fields.items()
        if not name.startswith("GGUF.")
    }


def _tensor_infos(reader: gguf.GGUFReader) -> list[tuple[str, int, list[int]]]:
    return [(t.name, int(t.tensor_type), t.shape.tolist()) for t in reader.tensors]


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays hold the same bytes (compared as bytes, so NaN or -0.0 is no issue)."""
    return np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


def check_copy(original: gguf.GGUFReader, copy: gguf.GGUFReader, key: str, value: str) -> None:
    """Raise ValueError unless ``copy`` is ``original`` with only the string ``key`` set to
    ``value``: every other metadata entry, and each tensor's name, type, shape and data,
    the same byte for byte."""
    if _string(copy, key) != value:
        raise ValueError(f"the copy does not have {key} = {value!r}")
    before, after = (
        {k: v for k, v in _kv_records(r).items() if k != key} for r in (original, copy)
    )
    if before != after:
        raise ValueError("the copy does not hold the same metadata")
    if _tensor_infos(original) != _tensor_infos(copy) or not all(
        _same_bytes(a.data, b.data) for a, b in zip(original.tensors, copy.tensors, strict=True)
    ):
        raise ValueError("the copy does not hold the same tensor data")


def write_with_string(src: Path, dst: Path, key: str, value: str) -> None:
    """Copy ``src`` to ``dst`` with the string KV ``key`` set to ``value`` (as gguf-py's
    ``gguf_new_metadata.py`` does: KVs re-encoded, tensors streamed from the memory map),
    then ``check_copy`` it; a failed check is a ValueError."""
    reader = read_gguf(src)
    if _string(reader, key) is None:
        raise ValueError(f"{src.name} has no string key {key!r}")
    # arch="": the writer adds no architecture KV of its own; all are copied, in order.
    writer = gguf.GGUFWriter(dst, arch="", endianess=reader.endianess)
    try:
        writer.data_alignment = reader.alignment
        for field in reader.fields.values():
            if field.name.startswith("GGUF."):
                continue  # virtual: version and counts, which the writer writes itself
            vtype = field.types[0]
            sub_type = field.types[-1] if vtype == _ARRAY else None
            content = value if field.name == key else field.contents()
            writer.add_key_value(field.name, content, vtype, sub_type=sub_type)
        for t in reader.tensors:
            writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in reader.tensors:
            writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    finally:
        writer.close()
    with dst.open("rb") as fh:
        os.fsync(fh.fileno())
    check_copy(reader, read_gguf(dst), key, value)


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
    """The ``tokenizer.ggml.pre`` string of the GGUF at ``path``, None if it has none."""
    return _string(read_gguf(path), PRE_KEY)


def derived_name(src: Path, pre: str) -> str:
    """The cache file name of ``src``'s copy with pre-tokenizer ``pre``; a new path, size or
    mtime of ``src`` (or a new ``DERIVE_VERSION``) gives a new name."""
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
    raised. A copy already in the cache is returned without reading ``src``'s header.
    """
    try:
        # A copy made earlier is found by name first: gguf-py takes seconds to parse a header.
        for alias in dict.fromkeys(PRE_ALIASES.values()):
            if (target := cache_dir / "gguf" / derived_name(src, alias)).is_file():
                return target
        pre = pre_tokenizer(src)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read the GGUF header of {src}: {exc}") from None
    if pre not in PRE_ALIASES:
        return src
    alias = PRE_ALIASES[pre]
    target = cache_dir / "gguf" / derived_name(src, alias)
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
        except ValueError as exc:  # gguf-py could not re-encode it, or the check failed
            raise BackendError(f"cannot make a faithful copy of {src.name}: {exc}") from None
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
