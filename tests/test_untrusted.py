"""Bounded reads, printable text, inert notebooks and unstoppable removal
(``autograder.untrusted``): each class of hostile input, with several variants."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograder.untrusted import (
    UnsafeInput,
    clean_text,
    json_depth,
    loads_json,
    neutralize_active_content,
    plain_data,
    read_bounded,
    read_npz,
    remove_tree,
)

NPZ_LIMITS = dict(max_bytes=10_000_000, max_member_bytes=8_000_000, max_total_bytes=16_000_000)


# --- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        '{"value": ' + "[" * 65 + "]" * 65 + "}",
        "[" * 1_000_000,  # unterminated: refused by depth before json sees it
    ],
)
def test_deep_json_is_refused_before_parsing(text):
    with pytest.raises(UnsafeInput, match="levels deep"):
        loads_json(text)


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"a": "[[[[{{{{" * 1000, "b": ['x"]]]]\\"', [1]]})
    assert json_depth(text) == 3
    assert loads_json(text)["b"][1] == [1]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('"\\udc80"', "\ufffd"),
        ('{"\\ud800k": ["\\udfff"]}', {"\ufffdk": ["\ufffd"]}),
        ('"\\ud83d\\ude00"', "\U0001f600"),  # a real pair stays
    ],
)
def test_lone_surrogates_are_replaced(text, expected):
    assert loads_json(text) == expected


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_non_standard_constants_are_refused(text):
    with pytest.raises(UnsafeInput):
        loads_json(text)


def test_read_bounded_refuses_links_fifos_and_large_files(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(UnsafeInput, match="larger"):
        read_bounded(big, 1000)
    link = tmp_path / "link"
    link.symlink_to(big)
    with pytest.raises(UnsafeInput):
        read_bounded(link, 10_000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeInput, match="regular"):
        read_bounded(fifo, 10_000)  # returns at once: never waits for a writer
    with pytest.raises(UnsafeInput):
        read_bounded(tmp_path, 10_000)
    assert read_bounded(big, 1001) == b"x" * 1001


# --- npz ----------------------------------------------------------------------------------


def test_plain_npz_reads_like_numpy(tmp_path):
    path = tmp_path / "ok.npz"
    arrays = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "f": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "i": np.array([1, 2, 3], dtype=np.int64),
        "s": np.float64(2.5),
    }
    np.savez_compressed(path, **arrays)
    got = read_npz(path, **NPZ_LIMITS)
    assert set(got) == set(arrays)
    for key, array in arrays.items():
        np.testing.assert_array_equal(got[key], array)
        assert got[key].dtype == array.dtype and got[key].shape == array.shape


def test_deflate_bombs_are_refused_before_inflating(tmp_path):
    one = tmp_path / "one.npz"  # one member inflating past its limit
    np.savez_compressed(one, a=np.zeros(1_100_000))
    many = tmp_path / "many.npz"  # members under the limit, their sum over it
    np.savez_compressed(many, **{f"a{i}": np.zeros(900_000) for i in range(3)})
    count = tmp_path / "count.npz"
    np.savez_compressed(count, **{f"a{i}": np.zeros(1) for i in range(100)})
    for path, reason in ((one, "takes"), (many, "take"), (count, "holds")):
        assert path.stat().st_size < 100_000
        with pytest.raises(UnsafeInput, match=reason):
            read_npz(path, **NPZ_LIMITS)


def _npy(header: dict, payload: bytes) -> bytes:
    text = repr(header).encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


def _zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize(
    "header, payload, reason",
    [
        # a shape that claims 80 GB in a 16-byte member: refused before any allocation
        ({"descr": "<f8", "fortran_order": False, "shape": (10**10,)}, b"\0" * 16, "header"),
        ({"descr": "<f8", "fortran_order": False, "shape": (4,)}, b"\0" * 16, "header"),
        ({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 8, "numeric"),
        ({"descr": "<U3", "fortran_order": False, "shape": (1,)}, b"\0" * 12, "numeric"),
    ],
)
def test_npy_headers_must_match_their_members(tmp_path, header, payload, reason):
    path = tmp_path / "forged.npz"
    _zip(path, {"a.npy": _npy(header, payload)})
    with pytest.raises(UnsafeInput, match=reason):
        read_npz(path, **NPZ_LIMITS)


def test_npz_that_is_not_a_zip_or_holds_a_pickle_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(UnsafeInput):
        read_npz(path, **NPZ_LIMITS)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _zip(path, {"a.npy": buffer.getvalue()})
    with pytest.raises(UnsafeInput, match="numeric"):
        read_npz(path, **NPZ_LIMITS)


# --- text that reaches people ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("ok\x1b[2J\x1b[H", "ok"),  # clear screen, cursor home
        ("\x1b]0;pwned\x07title", "title"),  # window title (OSC)
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # hyperlink
        ("bwrap: fake\rstudent 8/8", "bwrap: fakestudent 8/8"),  # carriage return
        ("a\x00b\x07c\x08d\x7fe\x9b1mf", "abcdef"),
        ("name\u202etxt.exe", "nametxt.exe"),  # right-to-left override
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("lone \udc80 surrogate", "lone  surrogate"),
        ("tab\there", "tab here"),
        ("línea\nsiguiente ñ", "línea\nsiguiente ñ"),  # honest text is kept
    ],
)
def test_clean_text_removes_what_a_terminal_would_obey(raw, shown):
    assert clean_text(raw) == shown


def test_clean_text_one_line_and_limit():
    assert clean_text("a\nb\r\nc", one_line=True) == "a b c"
    assert clean_text("x" * 50, 10) == "x" * 9 + "…"


def test_plain_data_is_json_safe():
    deep: list = []
    node = deep
    for _ in range(1000):
        node.append([])
        node = node[0]
    value = plain_data(
        {"s": "\udc80\x1b[31m", "f": float("inf"), "n": float("nan"), "d": deep, "o": object()}
    )
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")
    assert value["f"] == "inf" and value["s"] == ""


# --- inert notebooks --------------------------------------------------------------------------


def _output(mime: str, value: str):
    return new_output("display_data", data={mime: value, "text/plain": "<obj>"})


def test_active_content_is_neutralized():
    cell = new_code_cell("x", outputs=[])
    cell.outputs = [
        _output("application/javascript", "fetch('/formgrader/api/grade')"),
        _output("text/html", '<b>ok</b><script>alert(1)</script><img src=x onerror="alert(2)">'),
        _output("text/html", '<a href="javascript:alert(3)">x</a><iframe src="/x"></iframe>'),
        _output("image/svg+xml", "<svg onload=alert(4)></svg>"),
        _output("text/markdown", "**hola** <script>alert(5)</script>"),
        _output("application/vnd.custom+javascript", "alert(6)"),
        _output("text/html", "<table><tr><td>1</td></tr></table>"),  # honest: unchanged
    ]
    md = new_markdown_cell('Texto <img src=x onerror="alert(7)"> y `a < b`')
    md["attachments"] = {"x.png": {"image/png": "AAAA"}}
    nb = new_notebook(cells=[cell, md])
    assert neutralize_active_content(nb) >= 7
    text = nbformat.writes(nb)
    for needle in ("<script", "onerror", "onload", "javascript:", "iframe", "alert(1)", "alert(6)"):
        assert needle not in text, needle
    assert "<td>1</td>" in text  # honest HTML stays (normalized)
    assert "<b>ok</b>" in text and "**hola**" in text
    assert "`a < b`" not in text  # that cell held an attack: it was cleaned whole
    honest = new_notebook(cells=[new_markdown_cell("Si `a < b` y <b>x</b>, 3 > 2")])
    assert neutralize_active_content(honest) == 0
    assert honest.cells[0].source == "Si `a < b` y <b>x</b>, 3 > 2"
    assert "attachments" not in nb.cells[1]


# --- removal -----------------------------------------------------------------------------------


def test_remove_tree_removes_any_depth_and_unreadable_folders(tmp_path):
    top = tmp_path / "work"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(1100):  # deeper than recursion and PATH_MAX allow
        os.mkdir("d" * 200, dir_fd=fd)
        inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as handle:
        handle.write("x")
    os.close(fd)
    locked = top / "locked"
    locked.mkdir()
    (locked / "inside").write_text("x")
    locked.chmod(0)
    (top / "link").symlink_to("/etc")
    os.mkfifo(top / "fifo")
    remove_tree(top)
    assert not top.exists()
    assert os.path.exists("/etc/passwd")  # a link is removed, never followed
    remove_tree(top)  # absent: nothing to do
    file = tmp_path / "file"
    file.write_text("x")
    remove_tree(file)
    assert not file.exists()
