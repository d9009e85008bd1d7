"""A user's text file, line by line: plain or compressed, checked before a line reaches the corpus.

Compression is recognised by content (the format's magic bytes), whatever the file is called:
gzip, bzip2 and xz are read transparently. Every way a file can fail to be UTF-8 text of one
sentence per line is a one-line ``DataError`` naming the file (and the line where there is one):
UTF-16/32 (a byte-order mark, or NUL bytes), invalid UTF-8, a line too long to be a sentence, a
truncated archive, no text at all. A UTF-8 byte-order mark and CRLF line endings are accepted and
removed, since editors on Windows write both.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from pipeline.errors import DataError

# magic bytes → (format name, opener of a binary stream)
COMPRESSIONS: tuple[tuple[bytes, str, Callable[[BinaryIO], BinaryIO]], ...] = (
    (b"\x1f\x8b", "gzip", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", "bzip2", lambda raw: bz2.BZ2File(raw)),  # + a block size digit and the block magic: below
    (b"\xfd7zXZ\x00", "xz", lambda raw: lzma.LZMAFile(raw)),
)
UTF8_BOM = b"\xef\xbb\xbf"
# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
             (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
# The longest Bible verse is ~600 bytes and a paper-size model trains on 50 words; a line over this
# is a file that is not one sentence per line (a minified dump, a missing newline convention).
MAX_LINE_BYTES = 100_000


BZIP2_BLOCK = b"1AY&SY"  # bzip2's block magic after "BZh<1-9>": text starting "BZh" is not bzip2


def compression_of(head: bytes) -> Optional[tuple[str, Callable[[BinaryIO], BinaryIO]]]:
    for magic, name, opener in COMPRESSIONS:
        if head.startswith(magic):
            if name == "bzip2" and not (head[3:4].isdigit() and head[4:10] == BZIP2_BLOCK):
                continue
            return name, opener
    return None


def read_lines(path: Path, param: str) -> Iterator[str]:
    """Lines of ``path`` as text, without their line ending; ``param`` is the params key that named it."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file ({param})")
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found ({param})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({param}): {error.strerror}") from None
    with raw:
        compression = compression_of(raw.read(16))
        raw.seek(0)
        if compression is None:
            yield from _decoded_lines(raw, path, param)
            return
        name, opener = compression
        number = 0
        try:
            with opener(raw) as stream:
                for number, line in enumerate(_decoded_lines(stream, path, param), start=1):
                    yield line
        except (EOFError, OSError, lzma.LZMAError, zlib.error) as error:
            raise DataError(f"{path}: truncated or corrupt {name} data after line {number} ({param}): "
                            f"{error}") from None


def _decoded_lines(stream: BinaryIO, path: Path, param: str) -> Iterator[str]:
    has_text = False
    for number, line in enumerate(stream, start=1):
        if number == 1:
            for bom, encoding in WIDE_BOMS:
                if line.startswith(bom):
                    raise DataError(f"{path}: {encoding} text (byte-order mark {bom.hex(' ').upper()}); "
                                    f"convert it to UTF-8, e.g. iconv -f {encoding} -t UTF-8 ({param})")
            line = line.removeprefix(UTF8_BOM)
        if len(line) > MAX_LINE_BYTES:
            raise DataError(f"{path}:{number}: line of {len(line)} bytes, longer than the {MAX_LINE_BYTES}-byte "
                            f"limit for one sentence; is the file one sentence per line? ({param})")
        nul = line.find(b"\x00")
        if nul >= 0:
            raise DataError(f"{path}:{number}: NUL byte at byte {nul} of the line: a binary file, or UTF-16/32 "
                            f"text without a byte-order mark ({param})")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{path}:{number}: invalid UTF-8 at byte {error.start} of the line ({param})") from None
        text = text.rstrip("\n").removesuffix("\r")
        has_text = has_text or not text.isspace() and text != ""
        yield text
    if not has_text:
        raise DataError(f"{path}: no text (empty or whitespace only) ({param})")
