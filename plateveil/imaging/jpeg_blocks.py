"""A baseline JPEG edited in its 8x8 blocks: the layout, a full-resolution decode of one MCU-aligned region,
and a rewrite that replaces only the blocks whose pixels changed (everything else keeps its compressed
coefficients: no generation loss outside the plates).

The work is done by libjpeg-turbo through ``plateveil._native._jpegcoef`` (a small cffi extension built by
``make setup``: ``jpeg_read_coefficients`` -> replace blocks -> ``jpeg_write_coefficients``, the way ``jpegtran``
transforms losslessly; ``jpeg_crop_scanline``/``jpeg_skip_scanlines`` for the region decode). The forward DCT of
the replaced blocks is done here with numpy (colour conversion and chroma downsampling as a JPEG encoder does,
quantised with the photo's own tables). :func:`unsupported` says why a photo cannot take this path (the extension
is not built, progressive, arithmetic-coded, 12-bit, CMYK/YCCK/RGB-coded, unusual sampling factors): the caller
then decodes and re-encodes the whole photo as before and records the reason.

Guarantee (``tests/unit/plateveil/test_jpeg_blocks.py``): every block that is not replaced keeps its quantised
coefficients exactly, so a decoder gives bit-identical pixels outside the replaced blocks; where chroma is
subsampled (4:2:0, 4:2:2), libjpeg's default "fancy" upsampling interpolates chroma across block edges, so a
replaced chroma block also reaches the one pixel row/column next to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from plateveil.errors import BadImageError

_JCS_GRAYSCALE, _JCS_YCBCR = 1, 3
_ERRLEN = 200


@lru_cache(maxsize=1)
def _native() -> tuple[Any, Any, str | None]:
    """(ffi, lib, None) or (None, None, why the extension cannot be used)."""
    try:
        from plateveil._native import _jpegcoef  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, None, (f"JPEG block extension not built ({exc}; `make setup` or "
                            "`python -m plateveil._native.build`)")
    return _jpegcoef.ffi, _jpegcoef.lib, None


def available() -> str | None:
    """None when the extension is there, else why not."""
    return _native()[2]


@dataclass(frozen=True)
class Layout:
    """What libjpeg reads from the header: size, coding, components and quantisation tables."""

    width: int
    height: int
    components: int
    color_space: int   # libjpeg's J_COLOR_SPACE of the stored data (1 grey, 3 YCbCr, 2 RGB, 4 CMYK, 5 YCCK)
    progressive: bool
    arithmetic: bool
    precision: int
    max_h: int
    max_v: int
    restart_interval: int
    sampling: tuple[tuple[int, int], ...]   # (h, v) per component
    quant: tuple[np.ndarray, ...]            # (8, 8) float table per component, natural order

    @property
    def mcu(self) -> tuple[int, int]:
        """MCU width and height in pixels."""
        return 8 * self.max_h, 8 * self.max_v

    def blocks_of(self, c: int) -> tuple[int, int]:
        """(block rows, block columns) of component ``c`` that hold image data."""
        h, v = self.sampling[c]
        cw = -(-self.width * h // self.max_h)
        ch = -(-self.height * v // self.max_v)
        return -(-ch // 8), -(-cw // 8)


def _err(ffi: Any, buf: Any) -> str:
    return str(ffi.string(buf).decode("utf-8", "replace"))


def layout(data: bytes) -> Layout:
    """The JPEG's layout (raises BadImageError when libjpeg cannot read the header, or without the extension)."""
    ffi, lib, why = _native()
    if why:
        raise BadImageError(why)
    info = ffi.new("int[32]")
    quant = ffi.new("unsigned short[256]")
    err = ffi.new(f"char[{_ERRLEN}]")
    if lib.pv_info(data, len(data), info, quant, err, _ERRLEN) != 0:
        raise BadImageError(f"cannot read the JPEG header: {_err(ffi, err)}")
    n = int(info[2])
    tables = np.frombuffer(ffi.buffer(quant), dtype=np.uint16).reshape(4, 8, 8).astype(np.float64)
    sampling = tuple((int(info[16 + 4 * c]), int(info[17 + 4 * c])) for c in range(min(n, 4)))
    quants = tuple(tables[int(info[18 + 4 * c]) & 3] for c in range(min(n, 4)))
    return Layout(int(info[0]), int(info[1]), n, int(info[3]), bool(info[4]), bool(info[5]), int(info[6]),
                  int(info[7]), int(info[8]), int(info[9]), sampling, quants)


def unsupported(lay: Layout) -> str | None:
    """Why this JPEG cannot have its blocks replaced here (None: it can)."""
    if lay.progressive:
        return "progressive JPEG"
    if lay.arithmetic:
        return "arithmetic-coded JPEG"
    if lay.precision != 8:
        return f"{lay.precision}-bit JPEG"
    if lay.components == 4:
        return "CMYK/YCCK JPEG"
    if not ((lay.components == 3 and lay.color_space == _JCS_YCBCR) or
            (lay.components == 1 and lay.color_space == _JCS_GRAYSCALE)):
        return f"JPEG of {lay.components} components in colour space {lay.color_space} (not YCbCr or grey)"
    if lay.max_h not in (1, 2) or lay.max_v not in (1, 2):
        return f"sampling factors {lay.sampling} not handled"
    if lay.sampling[0] != (lay.max_h, lay.max_v) or any(s not in ((1, 1), lay.sampling[0]) for s in lay.sampling):
        return f"sampling factors {lay.sampling} not handled"
    if any(not np.all(q > 0) for q in lay.quant):
        return "a quantisation table is missing"
    return None


def align(lay: Layout, x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
    """The smallest MCU-aligned rectangle (clipped to the photo) holding ``[x1, x2) x [y1, y2)``."""
    mw, mh = lay.mcu
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    x2, y2 = min(x2, float(lay.width)), min(y2, float(lay.height))
    ax1 = max(0, int(math.floor(x1 / mw)) * mw)
    ay1 = max(0, int(math.floor(y1 / mh)) * mh)
    ax2 = min(lay.width, int(math.ceil(x2 / mw)) * mw)
    ay2 = min(lay.height, int(math.ceil(y2 / mh)) * mh)
    return ax1, ay1, max(ax2, ax1), max(ay2, ay1)


class Coefficients:
    """A baseline JPEG's quantised DCT coefficients, entropy-decoded once (``jpeg_read_coefficients``), from which
    the photo or any rectangle of it is decoded at any of libjpeg's DCT scales (:meth:`decode`), some blocks are
    replaced (:meth:`set_blocks`) and the stream is written again (:meth:`write`), without Huffman-decoding the
    photo again for each. Raises BadImageError when libjpeg cannot read it; ``warning`` is libjpeg's first warning
    while reading (corrupt entropy-coded data) or None. Use as a context manager, or :meth:`close` (the memory is
    also freed when the object is collected)."""

    def __init__(self, data: bytes) -> None:
        ffi, lib, why = _native()
        if why:
            raise BadImageError(why)
        self._ffi, self._lib, self._data = ffi, lib, data   # libjpeg reads the header from data again
        err = ffi.new(f"char[{_ERRLEN}]")
        handle = lib.pv_open(data, len(data), err, _ERRLEN)
        if handle == ffi.NULL:
            raise BadImageError(f"cannot read the JPEG's coefficients: {_err(ffi, err)}")
        self._h = ffi.gc(handle, lib.pv_close)
        self.warning = _err(ffi, err) if lib.pv_warnings(handle) else None

    def __enter__(self) -> Coefficients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._h is not None:
            self._ffi.release(self._h)
            self._h = None

    def _handle(self) -> Any:
        if self._h is None:
            raise ValueError("closed JPEG coefficients")
        return self._h

    def decode(self, rect: tuple[int, int, int, int] | None, width: int, height: int, scale: int = 8) -> np.ndarray:
        """Pixels ``rect`` = (x1, y1, x2, y2) (None: all) of the photo as stored (no EXIF rotation) decoded at
        ``scale``/8 (1..16; ``width`` x ``height`` is the photo's size at full scale), BGR uint8, exactly as a
        plain decode by libjpeg at that scale gives them there."""
        sw, sh = scaled_size(width, height, scale)
        x1, y1, x2, y2 = rect if rect is not None else (0, 0, sw, sh)
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            raise ValueError(f"empty region {rect}")
        out = np.empty((h, w, 3), np.uint8)
        err = self._ffi.new(f"char[{_ERRLEN}]")
        if self._lib.pv_decode(self._handle(), scale, x1, y1, w, h, self._ffi.from_buffer(out), err, _ERRLEN) != 0:
            raise BadImageError(f"cannot decode the JPEG region {rect} at scale {scale}/8: {_err(self._ffi, err)}")
        return out

    def set_blocks(self, blocks: Blocks) -> None:
        """Replace ``blocks`` (every other block keeps its coefficients)."""
        ffi = self._ffi
        comp = np.ascontiguousarray(blocks.comp, np.int32)
        row = np.ascontiguousarray(blocks.row, np.int32)
        col = np.ascontiguousarray(blocks.col, np.int32)
        coefs = np.ascontiguousarray(blocks.coefs, np.int16)
        err = ffi.new(f"char[{_ERRLEN}]")
        if self._lib.pv_set_blocks(self._handle(), len(blocks), ffi.from_buffer("int[]", comp),
                                   ffi.from_buffer("int[]", row), ffi.from_buffer("int[]", col),
                                   ffi.from_buffer("short[]", coefs), err, _ERRLEN) != 0:
            raise BadImageError(f"cannot rewrite the JPEG's blocks: {_err(ffi, err)}")

    def write(self) -> tuple[bytes, bool]:
        """The JPEG written from these coefficients; (bytes, whether its Huffman tables had to be optimised because
        the photo's own do not code every symbol). Only the JFIF header, the tables, the frame and the scan are
        written: add the ICC profile after."""
        ffi = self._ffi
        out = ffi.new("unsigned char **")
        outlen = ffi.new("unsigned long *")
        flags = ffi.new("int[1]")
        err = ffi.new(f"char[{_ERRLEN}]")
        if self._lib.pv_write(self._handle(), out, outlen, flags, err, _ERRLEN) != 0:
            raise BadImageError(f"cannot rewrite the JPEG's blocks: {_err(ffi, err)}")
        try:
            return bytes(ffi.buffer(out[0], outlen[0])), bool(flags[0])
        finally:
            self._lib.pv_free(out[0])

    def blocks(self, c: int, lay: Layout) -> np.ndarray:
        """Component ``c``'s quantised coefficients, (block rows, block columns, 64) int16."""
        rows, cols = lay.blocks_of(c)
        out = np.zeros((rows, cols, 64), np.int16)
        err = self._ffi.new(f"char[{_ERRLEN}]")
        n = self._lib.pv_get_blocks(self._handle(), c, self._ffi.from_buffer("short[]", out), out.size, err, _ERRLEN)
        if n != out.size:
            raise BadImageError(f"cannot read component {c}'s blocks: {_err(self._ffi, err)} ({n} of {out.size})")
        return out


def scaled_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """The size libjpeg decodes a ``width`` x ``height`` photo to at ``scale``/8 (it rounds up)."""
    return -(-width * scale // 8), -(-height * scale // 8)


def coefficient_bytes(lay: Layout) -> int:
    """Memory the coefficients of the whole photo take (2 bytes per coefficient, whole MCUs)."""
    mcols, mrows = -(-lay.width // lay.mcu[0]), -(-lay.height // lay.mcu[1])
    return sum(128 * mcols * h * mrows * v for h, v in lay.sampling)


def decode_region(data: bytes, rect: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels ``rect`` = (x1, y1, x2, y2) of the photo as stored (no EXIF rotation), BGR uint8, exactly as a full
    decode by libjpeg gives them there (one-off: :class:`Coefficients` decodes several regions from one read)."""
    with Coefficients(data) as coefs:
        if coefs.warning:
            raise BadImageError(f"corrupt JPEG data in the region {rect}: {coefs.warning}")
        lay = layout(data)
        return coefs.decode(rect, lay.width, lay.height)


# ----------------------------------------------------------------------------------------------
# forward DCT of replaced blocks


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


_D32 = _dct_matrix().astype(np.float32)


def _planes(region_bgr: np.ndarray, lay: Layout) -> list[np.ndarray]:
    """The region's component planes at full resolution as 8-bit samples, like an encoder's colour conversion
    (OpenCV's BGR->YCrCb is JFIF's full-range YCbCr with libjpeg's coefficients and rounding)."""
    import cv2

    if lay.components == 1:
        return [cv2.cvtColor(region_bgr, cv2.COLOR_BGR2GRAY)]
    ycrcb = cv2.cvtColor(region_bgr, cv2.COLOR_BGR2YCrCb)
    return [ycrcb[..., 0], ycrcb[..., 2], ycrcb[..., 1]]


@dataclass(frozen=True)
class Blocks:
    """Replacement blocks: component, block row, block column (whole photo) and quantised coefficients."""

    comp: np.ndarray     # (n,) int32
    row: np.ndarray      # (n,) int32
    col: np.ndarray      # (n,) int32
    coefs: np.ndarray    # (n, 64) int16, natural order

    def __len__(self) -> int:
        return int(self.comp.size)

    def pixel_mask(self, lay: Layout) -> np.ndarray:
        """(height, width) bool: the photo's pixels covered by a replaced block."""
        mask = np.zeros((lay.height, lay.width), bool)
        for c, r, k in zip(self.comp.tolist(), self.row.tolist(), self.col.tolist(), strict=True):
            h, v = lay.sampling[c]
            bw, bh = 8 * lay.max_h // h, 8 * lay.max_v // v
            mask[r * bh:(r + 1) * bh, k * bw:(k + 1) * bw] = True
        return mask


def changed_blocks(lay: Layout, rect: tuple[int, int, int, int], before: np.ndarray, after: np.ndarray,
                   within: list[tuple[int, int, int, int]] | None = None) -> Blocks:
    """The blocks of the MCU-aligned ``rect`` in which any pixel differs between ``before`` and ``after`` (the
    region's pixels as decoded and as concealed, BGR), with their coefficients computed from ``after``. Only the
    MCUs holding a changed pixel are colour-converted and transformed. ``within``: rectangles (region pixels)
    outside which nothing changed (the concealer's own), so that only they are compared."""
    import cv2

    x1, y1, _, _ = rect
    mw, mh = lay.mcu
    if x1 % mw or y1 % mh:
        raise ValueError(f"region {rect} is not aligned to the {mw}x{mh} MCU")
    empty = np.zeros(0, np.int32)
    none = Blocks(empty, empty, empty, np.zeros((0, 64), np.int16))
    h, w = after.shape[:2]
    ph, pw = -(-h // mh) * mh, -(-w // mw) * mw
    fine = np.zeros((ph // 8, pw // 8), bool)                                  # changed, per 8x8 pixels
    for a1, b1, a2, b2 in within if within is not None else [(0, 0, w, h)]:
        a1, b1 = max(0, a1) // 8 * 8, max(0, b1) // 8 * 8
        a2, b2 = min(w, -(-a2 // 8) * 8), min(h, -(-b2 // 8) * 8)
        if a2 <= a1 or b2 <= b1:
            continue
        th, tw = -(-(b2 - b1) // 8) * 8, -(-(a2 - a1) // 8) * 8
        # 255 where any channel of a pixel changed, as one 8-bit plane of (rows, 3 x columns)
        moved = cv2.absdiff(before[b1:b2, a1:a2], after[b1:b2, a1:a2])
        moved = cv2.threshold(moved.reshape(moved.shape[0], -1), 0, 255, cv2.THRESH_BINARY)[1]
        if (th, 3 * tw) != moved.shape:
            moved = cv2.copyMakeBorder(moved, 0, th - moved.shape[0], 0, 3 * tw - moved.shape[1],
                                       cv2.BORDER_CONSTANT, value=0)
        # the mean of each cell of 8 rows x 24 values (8x8 pixels): OpenCV's integer-factor area resize, rounded;
        # one changed value gives 255 / 192 -> 1, so > 0 exactly where any pixel of the cell changed
        cells = cv2.resize(moved, (tw // 8, th // 8), interpolation=cv2.INTER_AREA)
        fine[b1 // 8:b1 // 8 + th // 8, a1 // 8:a1 // 8 + tw // 8] |= cells > 0
    if (ph, pw) != (h, w):   # the photo's right/bottom edge: replicate, as an encoder pads
        after = np.pad(after, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    if not fine.any():
        return none
    per_mcu = fine.reshape(ph // mh, mh // 8, pw // mw, mw // 8)
    my, mx = np.nonzero(per_mcu.any(axis=(1, 3)))                              # the MCUs touched
    n = my.size
    tiles = np.ascontiguousarray(after.reshape(ph // mh, mh, pw // mw, mw, 3)[my, :, mx])   # (n, mh, mw, 3)
    planes = [pl.reshape(n, mh, mw) for pl in _planes(tiles.reshape(n * mh, mw, 3), lay)]
    touched_fine = per_mcu[my, :, mx]                                         # (n, mh/8, mw/8)
    comps, rows, cols, coefs = [], [], [], []
    for c, plane in enumerate(planes):
        hs, vs = lay.sampling[c]
        fx, fy = lay.max_h // hs, lay.max_v // vs          # pixels per sample
        samples = plane.astype(np.float32)
        if fx > 1 or fy > 1:   # chroma downsampling: the mean of each fx x fy cell, as libjpeg's encoder does
            # (OpenCV's integer-factor area resize of the n tiles stacked: the same means, one pass)
            samples = cv2.resize(samples.reshape(n * mh, mw), (mw // fx, n * mh // fy),
                                 interpolation=cv2.INTER_AREA).reshape(n, mh // fy, mw // fx)
        blocks = samples.reshape(n, vs, 8, hs, 8).transpose(0, 1, 3, 2, 4)      # (n, vs, hs, 8, 8)
        touched = touched_fine.reshape(n, vs, fy, hs, fx).any(axis=(2, 4))      # (n, vs, hs)
        k, i, j = np.nonzero(touched)
        brow = (y1 // mh + my[k]) * vs + i
        bcol = (x1 // mw + mx[k]) * hs + j
        rows_total, cols_total = lay.blocks_of(c)
        keep = (brow < rows_total) & (bcol < cols_total)
        if not keep.any():
            continue
        tiles8 = blocks[k[keep], i[keep], j[keep]] - 128.0                      # (m, 8, 8)
        freq = _D32 @ tiles8 @ _D32.T
        quantised = np.rint(freq / lay.quant[c].astype(np.float32))
        coefs.append(np.clip(quantised, -2047, 2047).astype(np.int16).reshape(-1, 64))
        comps.append(np.full(int(keep.sum()), c, np.int32))
        rows.append(brow[keep].astype(np.int32))
        cols.append(bcol[keep].astype(np.int32))
    if not comps:
        return none
    return Blocks(np.concatenate(comps), np.concatenate(rows), np.concatenate(cols), np.concatenate(coefs))


def replace_blocks(data: bytes, blocks: Blocks) -> tuple[bytes, bool]:
    """The JPEG rewritten with ``blocks`` replaced, every other block's coefficients kept; (bytes, whether its
    Huffman tables had to be optimised; see :meth:`Coefficients.write`)."""
    with Coefficients(data) as coefs:
        coefs.set_blocks(blocks)
        return coefs.write()


def read_blocks(data: bytes, lay: Layout) -> list[np.ndarray]:
    """Every component's quantised coefficients, (block rows, block columns, 64) int16 (for tests and checks)."""
    with Coefficients(data) as coefs:
        return [coefs.blocks(c, lay) for c in range(lay.components)]
