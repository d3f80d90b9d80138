"""Reading, storing and showing what a submission controls.

Every byte a student's notebook, kernel or upload produced is hostile. This module is where the
grader bounds it, before anything parses it or shows it to a person:

* **bounded reads**: ``read_bounded`` (a regular file, never a link or a FIFO, at most N bytes),
  ``loads_json`` (nesting depth measured *before* ``json`` parses, so a 100,000-level answer
  costs a scan, not a ``RecursionError`` in a later stage), ``read_npz`` (every member's
  decompressed size and the archive's total checked against the zip directory and the ``.npy``
  header before a byte is inflated: a deflate bomb is refused, not expanded);
* **plain, printable text**: ``clean_text`` removes terminal escape sequences, control and
  bidirectional-override characters and lone surrogates (which no encoder writes), so nothing a
  kernel prints can clear the instructor's screen, fake a table row or break a results file;
  ``plain_data`` does the same for parameters stored in results (bounded depth and length,
  non-finite floats as text);
* **inert notebooks**: ``neutralize_active_content`` strips scripts, event handlers and
  JavaScript outputs from an executed notebook before formgrader renders it in the
  instructor's browser, on the origin whose API changes grades;
* **removal that cannot be stopped**: ``remove_tree`` deletes a work folder however deep its
  nesting (``shutil.rmtree`` recurses and fails past ~1,000 levels or ``PATH_MAX``).

Errors are ``UnsafeInput``: a catalogue id and parameters (the reason a student reads).
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Any

MAX_JSON_DEPTH = 64  # captured values and notebooks are far shallower; deeper is an attack
MAX_TEXT_CHARS = 2_000  # one parameter or reason kept in results


class UnsafeInput(ValueError):
    """Input the grader refuses to parse (too large, too deep, not a plain file...), as data:
    a catalogue id ``unsafe.<kind>`` (``dlcourse/messages/common.toml``) and its
    parameters. ``note`` is ``{"id", "params"}``, for a message that quotes why (rendered in
    that message's language); ``str()`` is the English text."""

    def __init__(self, kind: str, **params: Any):
        self.kind = kind  # too_large (limit), not_regular, unreadable (detail), too_deep, ...
        self.params = params
        super().__init__(f"unsafe.{kind}")

    @property
    def note(self) -> dict[str, Any]:
        return {"id": f"unsafe.{self.kind}", "params": dict(self.params)}

    def __str__(self) -> str:
        from autograder import messages  # the catalogue is read only when a text is wanted

        return messages.render(self.note["id"], self.params, "en")


# --- bounded reads ----------------------------------------------------------------------------


def read_bounded(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (never follows a final symlink,
    never blocks on a FIFO, never reads past the bound even if the file grows)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafeInput("unreadable", detail=exc.strerror or type(exc).__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeInput("not_regular")
        if info.st_size > max_bytes:
            raise UnsafeInput("too_large", limit=max_bytes, size=_size(max_bytes))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeInput("too_large", limit=max_bytes, size=_size(max_bytes))
    return data


def _size(n: int) -> str:
    return f"{n / 1_000_000:g} MB" if n >= 1_000_000 else f"{n} bytes"


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of ``[``/``{`` outside strings, in linear time and bounded memory."""
    import numpy as np

    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    skeleton = _JSON_STRING.sub(b"", raw)  # strings may hold brackets
    deepest = level = 0
    chunk = 1 << 22
    for start in range(0, len(skeleton), chunk):
        part = np.frombuffer(
            skeleton, dtype=np.uint8, count=min(chunk, len(skeleton) - start), offset=start
        )
        opens = (part == ord("[")) | (part == ord("{"))
        closes = (part == ord("]")) | (part == ord("}"))
        where = np.flatnonzero(opens | closes)
        if not where.size:
            continue
        steps = np.where(opens[where], 1, -1).astype(np.int64)
        running = level + np.cumsum(steps)
        deepest = max(deepest, int(running.max()))
        level = int(running[-1])
    return deepest


def loads_json(
    data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, constants: bool = False
) -> Any:
    """Parse untrusted JSON: depth checked first; ``NaN``/``Infinity`` refused unless
    ``constants``; lone surrogates (``"\\udc80"``) replaced by U+FFFD in every string."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeInput("not_utf8") from None
    else:
        text = data
    # no document can nest deeper than it has openings: most artifacts are checked by two
    # counts, the rest by the full scan
    openings = text.count("[") + text.count("{")
    depth = json_depth(text) if openings > max_depth else openings
    if depth > max_depth:
        raise UnsafeInput("too_deep", depth=depth, limit=max_depth)
    try:
        value = json.loads(text, parse_constant=None if constants else _reject_constant)
    except (ValueError, RecursionError) as exc:
        raise UnsafeInput("not_json", detail=str(exc)[:120]) from None
    if not _SURROGATE_ESCAPE.search(text) and not _SURROGATES.search(text):
        return value  # no lone surrogate can be in it: skip the walk
    return _without_surrogates(value)


def read_json(path: str | os.PathLike, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    return loads_json(read_bounded(path, max_bytes), max_depth=max_depth)


def _reject_constant(token: str) -> float:
    raise ValueError(f"non-standard JSON constant {token}")


_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a \uD800-\uDFFF escape in JSON text


def _without_surrogates(value: Any) -> Any:
    # depth is bounded by the caller's check, so recursion is safe here
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def read_npz(
    path: str | os.PathLike,
    *,
    max_bytes: int,
    max_member_bytes: int,
    max_total_bytes: int,
    max_members: int = 64,
    kinds: str = "biuf",
) -> dict[str, Any]:
    """The arrays of a ``.npz`` file, as ``np.load(allow_pickle=False)`` would give them, with
    every size checked before it is inflated or allocated: the archive (``max_bytes``), each
    member's declared size (``max_member_bytes``, which zip decompression then enforces), their
    sum (``max_total_bytes``), and each ``.npy`` header's shape against its member's size."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    data = read_bounded(path, max_bytes)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnsafeInput("not_npz") from None
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise UnsafeInput("too_many_arrays", n=len(members), limit=max_members)
        total = sum(m.file_size for m in members)
        if total > max_total_bytes:
            raise UnsafeInput("arrays_too_large", size=_size(total), limit=_size(max_total_bytes))
        arrays = {}
        for member in members:
            if member.file_size > max_member_bytes:
                raise UnsafeInput(
                    "array_too_large", name=member.filename, size=_size(member.file_size)
                )
            name = member.filename.removesuffix(".npy")
            try:
                with archive.open(member) as handle:
                    version = npy.read_magic(handle)
                    header = (
                        npy.read_array_header_1_0
                        if version == (1, 0)
                        else npy.read_array_header_2_0
                    )
                    shape, fortran, dtype = header(handle)
                    if dtype.hasobject or dtype.kind not in kinds:
                        raise UnsafeInput("not_numeric", name=name)
                    nbytes = math.prod(shape) * dtype.itemsize
                    if handle.tell() + nbytes != member.file_size:
                        raise UnsafeInput("bad_header", name=name)
                    payload = handle.read(nbytes + 1)  # + 1: reach the end, check the CRC
            except UnsafeInput:
                raise
            except Exception as exc:  # noqa: BLE001 - any malformed member is the same verdict
                raise UnsafeInput("not_plain_array", name=name, detail=str(exc)[:120]) from None
            if len(payload) != nbytes:
                raise UnsafeInput("truncated", name=name)
            array = np.frombuffer(payload, dtype=dtype).reshape(
                shape, order="F" if fortran else "C"
            )
            arrays[name] = array.copy()
        return arrays


# --- text that reaches people ---------------------------------------------------------------

_ESCAPE_SEQUENCES = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]?          # CSI: colours, cursor moves, clear screen
  | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)? # OSC: window title, hyperlinks
  | \x1b[PX^_][^\x1b]*(?:\x1b\\)?      # DCS, SOS, PM, APC strings
  | \x1b.?                             # any other escape
  | \x9b[0-?]*[ -/]*[@-~]?             # the 8-bit CSI
    """,
    re.X | re.S,
)
# C0 (but tab and newline), DEL, C1, zero-width and bidirectional controls, byte-order mark
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def clean_text(value: Any, limit: int | None = MAX_TEXT_CHARS, *, one_line: bool = False) -> str:
    """``value`` as printable text: no escape sequences, control or bidi characters, lone
    surrogates; ``\\r\\n`` as ``\\n``; at most ``limit`` characters (with an ellipsis)."""
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\r\n", "\n")
    text = _ESCAPE_SEQUENCES.sub("", text)
    text = text.replace("\t", " ")
    text = _INVISIBLE.sub("", text)
    if one_line:
        text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def plain_data(value: Any, *, max_depth: int = 8, limit: int = MAX_TEXT_CHARS) -> Any:
    """A JSON-safe, printable copy of ``value``: strings cleaned, non-finite floats and other
    objects as text, containers at most ``max_depth`` deep and 100 items wide."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value, limit)
    if max_depth <= 0:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:100]
        return {
            clean_text(k, 200): plain_data(v, max_depth=max_depth - 1, limit=limit)
            for k, v in items
        }
    if isinstance(value, list | tuple):
        return [plain_data(v, max_depth=max_depth - 1, limit=limit) for v in list(value)[:100]]
    return clean_text(repr(value), limit)


# --- inert notebooks ------------------------------------------------------------------------

_SCRIPT_MIMES = ("javascript", "ecmascript")
_HTML_MIMES = ("text/html", "text/markdown")
_MAYBE_HTML = re.compile(r"<\s*[A-Za-z!/?]")
NEUTRALIZED = "[removed by the grader: active content is not kept in graded notebooks]"


def clean_html(markup: str) -> str:
    """HTML without scripts, event handlers, ``javascript:`` links, frames or forms."""
    import nh3

    return nh3.clean(markup)


def neutralize_active_content(nb: Any) -> int:
    """Make an executed notebook inert for the browser that shows it (formgrader): JavaScript
    and SVG outputs are replaced by a note, HTML and Markdown outputs and Markdown cells are
    cleaned of scripts and event handlers, and attachments are dropped. Returns how many
    outputs or cells were changed."""
    changed = 0
    for cell in nb.get("cells", []):
        if cell.get("attachments"):
            cell.pop("attachments", None)
            changed += 1
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            if isinstance(source, str) and _MAYBE_HTML.search(source):
                cleaned = clean_html(source)
                # only escaped (`a < b` in prose or code): the Markdown is kept as written
                if html.unescape(cleaned) != html.unescape(source):
                    cell["source"] = cleaned
                    changed += 1
        for output in cell.get("outputs", []) or []:
            data = output.get("data")
            if not isinstance(data, dict):
                continue
            for mime in list(data):
                value = data[mime]
                if any(s in mime for s in _SCRIPT_MIMES) or mime == "image/svg+xml":
                    del data[mime]
                    data.setdefault("text/plain", NEUTRALIZED)
                    changed += 1
                elif mime in _HTML_MIMES or mime.endswith("+html"):
                    text = "".join(value) if isinstance(value, list) else str(value)
                    cleaned = clean_html(text)
                    if cleaned != text:
                        data[mime] = cleaned
                        changed += 1
    return changed


# --- removal --------------------------------------------------------------------------------


def remove_tree(path: str | os.PathLike) -> None:
    """Remove ``path`` and everything under it, whatever its depth or permissions.

    Folders are never descended into: each one's entries are moved up to the top folder (a
    rename within one file system), then it is removed, so the work is linear in the number of
    entries, no path grows longer than two components and nothing recurses."""
    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        path.unlink()
        return
    os.chmod(path, 0o700)
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    token = uuid.uuid4().hex[:12]
    moved = 0
    try:
        while names := os.listdir(top):
            for name in names:
                try:
                    mode = os.stat(name, dir_fd=top, follow_symlinks=False).st_mode
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(mode):
                    os.unlink(name, dir_fd=top)
                    continue
                os.chmod(name, 0o700, dir_fd=top)
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
                try:
                    for child in os.listdir(inner):
                        moved += 1
                        os.rename(child, f".rm-{token}-{moved}", src_dir_fd=inner, dst_dir_fd=top)
                finally:
                    os.close(inner)
                os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(path)
