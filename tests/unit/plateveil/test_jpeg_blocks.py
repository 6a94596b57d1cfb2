"""Touch only the plate (issue 37): a concealed baseline JPEG is the original stream with only the changed 8x8
blocks replaced. Outside the replaced blocks every coefficient is the input's and the decoded pixels are
bit-identical (one more pixel where chroma is subsampled: libjpeg's fancy upsampling interpolates across block
edges); the JPEGs this cannot edit take the whole-photo path with the reason in ``encoding``."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from model_store.runtime import PlateFinding, Timings
from plateveil import imaging
from plateveil.imaging import jpeg_blocks
from plateveil.pipeline import conceal_bytes

pytestmark = pytest.mark.skipif(jpeg_blocks.available() is not None,
                                reason=f"{jpeg_blocks.available()} (the whole-photo path is tested elsewhere)")

W, H = 333, 250   # not a multiple of the MCU: the right and bottom MCUs are partial
QUAD = ((120.3, 101.7), (231.6, 104.2), (230.4, 139.8), (119.1, 137.5))
PLATE = PlateFinding(polygon=QUAD, score=0.9, box=(119.1, 101.7, 231.6, 139.8), det_score=0.8)


@dataclass
class Det:
    box: tuple[float, float, float, float]


@dataclass
class Finder:
    """A two-stage finder reporting one plate, noting what it was shown."""

    plates: list[PlateFinding]
    detector_long_side: int = 160
    tag: str = "fake@37"
    seen: dict[str, Any] = field(default_factory=dict)

    def find_plates(self, image_bgr):
        return list(self.plates), Timings(detect=0.5, landmarks=0.25)

    def detect(self, image_bgr, score_threshold=None, photo_size=None):
        self.seen["detect"] = (image_bgr.shape, photo_size)
        return [Det(p.box) for p in self.plates]

    def refine(self, image_bgr, detections):
        self.seen["refine"] = image_bgr.copy()
        return list(self.plates)


def texture(w: int = W, h: int = H, grey: bool = False) -> np.ndarray:
    rng = np.random.default_rng(7)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.2)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.clip(img.astype(int) + ((xx * 255) // w)[..., None] // 3 - 40, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if grey else img


SAMPLING = {"444": 0x111111, "422": 0x211111, "420": 0x221111}


def jpeg(kind: str, w: int = W, h: int = H, quality: int = 90) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if kind == "grey":
        return cv2.imencode(".jpg", texture(w, h, grey=True), params)[1].tobytes()
    if kind == "restart":
        params += [cv2.IMWRITE_JPEG_RST_INTERVAL, 3, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING["420"]]
    elif kind == "progressive":
        params += [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    else:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING[kind]]
    return cv2.imencode(".jpg", texture(w, h), params)[1].tobytes()


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def replaced_pixels(data_in: bytes, data_out: bytes) -> tuple[np.ndarray, jpeg_blocks.Layout]:
    """(H, W) bool: pixels of every block whose coefficients differ between the two files."""
    lay = jpeg_blocks.layout(data_in)
    assert jpeg_blocks.layout(data_out).sampling == lay.sampling
    mask = np.zeros((lay.height, lay.width), bool)
    for c, (a, b) in enumerate(zip(jpeg_blocks.read_blocks(data_in, lay), jpeg_blocks.read_blocks(data_out, lay),
                                   strict=True)):
        h, v = lay.sampling[c]
        bw, bh = 8 * lay.max_h // h, 8 * lay.max_v // v
        for r, k in zip(*np.nonzero(np.any(a != b, axis=2)), strict=True):
            mask[r * bh:(r + 1) * bh, k * bw:(k + 1) * bw] = True
    return mask, lay


@pytest.mark.parametrize("kind", ["420", "444", "422", "grey", "restart"])
def test_outside_the_replaced_blocks_the_pixels_are_bit_identical(kind):
    data = jpeg(kind)
    finder = Finder([PLATE])
    result = conceal_bytes(data, finder, style="solid")
    assert result.encoding["path"] == "blocks", result.encoding
    assert result.plates == [PLATE] and (result.width, result.height) == (W, H)
    before, after = decode(data), decode(result.image_bytes)
    assert before.shape == after.shape and after.dtype == np.uint8
    replaced, lay = replaced_pixels(data, result.image_bytes)
    assert replaced.any() and result.encoding["replaced_blocks"] > 0
    # only blocks near the plate were replaced (the concealment's own rectangle, MCU-aligned)
    x1, y1, x2, y2 = result.encoding["region"]
    assert not replaced[:y1].any() and not replaced[y2:].any()
    assert not replaced[:, :x1].any() and not replaced[:, x2:].any()
    changed = before != after if before.ndim == 2 else np.any(before != after, axis=2)
    subsampled = lay.sampling[0] != (1, 1) and lay.components == 3
    reach = cv2.dilate(replaced.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) if subsampled else replaced
    assert not (changed & ~reach).any(), f"{int((changed & ~reach).sum())} pixels changed outside the replaced blocks"
    if not subsampled:   # 4:4:4 and grey: exactly the replaced blocks
        assert not (changed & ~replaced).any()
    # the plate is concealed: inside the quad, the solid fill the whole-photo path draws, within JPEG noise
    reference = decode(conceal_bytes(data, Finder([PLATE]), style="solid", fast_paths=False).image_bytes)
    if after.ndim == 2:
        reference = cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY)
    inner = np.zeros((H, W), np.uint8)
    cv2.fillPoly(inner, [np.round(np.array(QUAD)).astype(np.int32)], 1)
    inner = cv2.erode(inner, np.ones((5, 5), np.uint8)).astype(bool)
    assert np.abs(after[inner].astype(int) - reference[inner].astype(int)).mean() < 4
    assert np.abs(after[inner].astype(int) - before[inner].astype(int)).mean() > 10


def test_the_restart_interval_and_the_huffman_tables_are_kept():
    data = jpeg("restart")
    out = conceal_bytes(data, Finder([PLATE]), style="solid")
    assert out.encoding["path"] == "blocks" and out.encoding["huffman"] == "kept"
    assert jpeg_blocks.layout(out.image_bytes).restart_interval == jpeg_blocks.layout(data).restart_interval == 3
    assert b"\xff\xd0" in out.image_bytes.split(b"\xff\xda", 1)[1]


def test_optimised_huffman_tables_are_recomputed_when_they_do_not_code_every_symbol():
    # Pillow's optimize=True writes tables fitted to the photo: some symbols have no code
    buf = io.BytesIO()
    Image.fromarray(texture()[:, :, ::-1]).save(buf, "JPEG", quality=90, optimize=True)
    data = buf.getvalue()
    out = conceal_bytes(data, Finder([PLATE]), style="solid")
    assert out.encoding["path"] == "blocks" and out.encoding["huffman"] == "optimised"
    replaced, _ = replaced_pixels(data, out.image_bytes)
    changed = np.any(decode(data) != decode(out.image_bytes), axis=2)
    reach = cv2.dilate(replaced.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not (changed & ~reach).any()


def test_a_one_plate_photo_keeps_its_size_within_two_percent():
    data = jpeg("420", 1600, 1200, quality=92)
    plate = PlateFinding(polygon=((700.0, 800.0), (880.0, 804.0), (879.0, 846.0), (699.0, 842.0)), score=0.9,
                         box=(699.0, 800.0, 880.0, 846.0), det_score=0.8)
    out = conceal_bytes(data, Finder([plate]))   # the default style (blur)
    assert out.encoding["path"] == "blocks"
    size_in = len(imaging.strip_jpeg_metadata(data))
    assert abs(len(out.image_bytes) - size_in) / size_in < 0.02, (len(out.image_bytes), size_in)


def test_the_detector_sees_a_reduced_decode_and_the_landmarks_the_exact_pixels_around_the_plate():
    data = jpeg("420", 640, 480)
    plate = PlateFinding(polygon=((300.0, 200.0), (400.0, 200.0), (400.0, 230.0), (300.0, 230.0)), score=0.9,
                         box=(300.0, 200.0, 400.0, 230.0), det_score=0.8)
    finder = Finder([plate], detector_long_side=320)
    conceal_bytes(data, finder)
    assert finder.seen["detect"] == ((240, 320, 3), (640, 480))          # 1/2 scale in the DCT
    shown = finder.seen["refine"]
    assert shown.shape == (480, 640, 3)
    full = decode(data)
    win = (slice(200 - 30, 230 + 30), slice(300 - 100, 400 + 100))       # the box grown by its own size
    assert np.array_equal(shown[win], full[win])                          # exactly a full decode's pixels there
    assert not shown[:100].any()                                          # far away: never decoded


def test_the_region_decode_equals_a_full_decode():
    data = jpeg("420", 700, 400)
    full = decode(data)
    for rect in [(16, 32, 200, 96), (0, 0, 700, 400), (608, 352, 700, 400), (96, 0, 400, 400)]:
        x1, y1, x2, y2 = rect
        assert np.array_equal(jpeg_blocks.decode_region(data, rect), full[y1:y2, x1:x2]), rect


REDUCED = {1: cv2.IMREAD_REDUCED_COLOR_8, 2: cv2.IMREAD_REDUCED_COLOR_4, 4: cv2.IMREAD_REDUCED_COLOR_2,
           8: cv2.IMREAD_COLOR}


@pytest.mark.parametrize("kind", ["420", "444", "422", "grey", "restart"])
def test_decodes_from_the_coefficients_equal_plain_decodes_at_every_scale(kind):
    # one entropy decode (Coefficients), then libjpeg decodes from the coefficients: the pixels of a plain decode
    data = jpeg(kind)
    with jpeg_blocks.Coefficients(data) as coefs:
        assert coefs.warning is None
        for scale, flag in REDUCED.items():
            plain = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
            whole = coefs.decode(None, W, H, scale)
            assert whole.shape == plain.shape == (*jpeg_blocks.scaled_size(W, H, scale)[::-1], 3)
            assert np.array_equal(whole, plain), scale
            sw, sh = jpeg_blocks.scaled_size(W, H, scale)
            for rect in [(0, sh // 3, sw, sh), (sw // 4, sh // 5, sw // 2 + 1, sh // 2), (sw - 3, sh - 2, sw, sh)]:
                x1, y1, x2, y2 = rect
                assert np.array_equal(coefs.decode(rect, W, H, scale), plain[y1:y2, x1:x2]), (scale, rect)


@pytest.mark.parametrize("kind", ["420", "444", "grey"])
def test_one_value_changed_by_one_level_is_found_and_only_its_blocks(kind):
    data = jpeg(kind)
    lay = jpeg_blocks.layout(data)
    rect = jpeg_blocks.align(lay, 40, 40, 250, 200)
    region = decode(data)
    region = region if region.ndim == 3 else cv2.cvtColor(region, cv2.COLOR_GRAY2BGR)
    before = np.ascontiguousarray(region[rect[1]:rect[3], rect[0]:rect[2]])
    after = before.copy()
    after[37, 101, 2] ^= 1                                  # one channel of one pixel, one level
    blocks = jpeg_blocks.changed_blocks(lay, rect, before, after)
    y, x = rect[1] + 37, rect[0] + 101
    expected = set()
    for c, (h, v) in enumerate(lay.sampling):
        bw, bh = 8 * lay.max_h // h, 8 * lay.max_v // v    # photo pixels per block of component c
        expected.add((c, y // bh, x // bw))
    assert set(zip(blocks.comp.tolist(), blocks.row.tolist(), blocks.col.tolist(), strict=True)) == expected
    assert not jpeg_blocks.changed_blocks(lay, rect, before, before.copy())


def test_decoding_reads_the_edited_coefficients_not_the_file():
    data = jpeg("444")
    lay = jpeg_blocks.layout(data)
    block = jpeg_blocks.Blocks(np.array([0], np.int32), np.array([5], np.int32), np.array([7], np.int32),
                               np.zeros((1, 64), np.int16))
    with jpeg_blocks.Coefficients(data) as coefs:
        before = coefs.decode(None, W, H)
        coefs.set_blocks(block)
        after = coefs.decode(None, W, H)
        written, _ = coefs.write()
        assert np.array_equal(coefs.blocks(0, lay)[5, 7], np.zeros(64, np.int16))
    changed = np.any(before != after, axis=2)
    inside = np.zeros_like(changed)
    inside[40:48, 56:64] = True                                     # that 8x8 block (4:4:4), nothing else
    assert changed[inside].sum() > 48 and not changed[~inside].any()
    assert np.array_equal(after, decode(written))


@pytest.mark.skipif(shutil.which("cjpeg") is None, reason="no cjpeg (Debian libjpeg-turbo-progs) to write a "
                                                          "sequential JPEG in several scans")
def test_a_sequential_jpeg_in_several_scans_is_decoded_and_edited(tmp_path):
    # one scan per component (baseline SOF0, non-interleaved): libjpeg reads every scan itself at the start of a
    # decode, the coefficients are not fed; the result must still be a plain decode's
    ppm, script = tmp_path / "in.ppm", tmp_path / "scans.txt"
    cv2.imwrite(str(ppm), texture())
    script.write_text("0;\n1;\n2;\n")
    data = subprocess.run(["cjpeg", "-scans", str(script), "-quality", "90", str(ppm)], check=True,
                          capture_output=True).stdout
    assert data.count(b"\xff\xda") == 3 and jpeg_blocks.unsupported(jpeg_blocks.layout(data)) is None
    with jpeg_blocks.Coefficients(data) as coefs:
        assert np.array_equal(coefs.decode(None, W, H, 4), cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED[4]))
        assert np.array_equal(coefs.decode((16, 32, 200, 96), W, H), decode(data)[32:96, 16:200])
    result = conceal_bytes(data, Finder([PLATE]), style="solid")
    assert result.encoding["path"] == "blocks"
    replaced, _ = replaced_pixels(data, result.image_bytes)
    changed = np.any(decode(data) != decode(result.image_bytes), axis=2)
    reach = cv2.dilate(replaced.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert replaced.any() and not (changed & ~reach).any()


def test_a_photo_whose_coefficients_do_not_fit_the_decode_budget_takes_the_whole_photo_path():
    data = jpeg("420")
    lay = jpeg_blocks.layout(data)
    # every coefficient + the detector's copy: 333 px is at least twice the finder's 160, so a quarter of the pixels
    need = jpeg_blocks.coefficient_bytes(lay) + 3 * -(-W * H // 4)
    fits = conceal_bytes(data, Finder([PLATE]), style="solid", decode_budget_bytes=need)
    assert fits.encoding["path"] == "blocks"
    over = conceal_bytes(data, Finder([PLATE]), style="solid", decode_budget_bytes=need - 1)
    assert over.encoding == {"path": "reencoded", "reason": "over the decode budget (decoded at reduced size and "
                                                             "re-encoded)"}


def test_corrupt_entropy_coded_data_takes_the_whole_photo_path_and_says_why():
    data = jpeg("420")
    scan = data.index(b"\xff\xda") + 200
    corrupt = data[:scan] + b"\xff\xd5" + data[scan + 2:]   # a restart marker where none belongs
    result = conceal_bytes(corrupt, Finder([PLATE]), style="solid")
    assert result.encoding["path"] == "reencoded"
    assert result.encoding["reason"].startswith("corrupt JPEG data (libjpeg warning: Corrupt JPEG data")


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(texture()[:, :, ::-1]).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def cmyk() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(texture()[:, :, ::-1]).convert("CMYK").save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("make, reason", [
    (lambda: jpeg("progressive"), "progressive JPEG"),
    (cmyk, "CMYK/YCCK JPEG"),
    (exif_rotated, "EXIF orientation 6 (the photo is turned upright and re-encoded)"),
])
def test_other_jpegs_take_the_whole_photo_path_and_say_why(make, reason):
    data = make()
    result = conceal_bytes(data, Finder([PLATE]), style="solid")
    assert result.encoding == {"path": "reencoded", "reason": reason}
    assert result.plates == [PLATE] and imaging.sniff_image(result.image_bytes) == "jpeg"


def test_an_arithmetic_coded_jpeg_is_not_edited():
    data = jpeg("420")
    sof = data.index(b"\xff\xc0")
    arith = data[:sof] + b"\xff\xc9" + data[sof + 2:]   # the frame says arithmetic coding (SOF9)
    assert jpeg_blocks.unsupported(jpeg_blocks.layout(arith)) == "arithmetic-coded JPEG"


def test_without_the_extension_the_whole_photo_path_runs_and_says_why(monkeypatch):
    monkeypatch.setattr(jpeg_blocks, "_native", lambda: (None, None, "JPEG block extension not built (test)"))
    result = conceal_bytes(jpeg("420"), Finder([PLATE]), style="solid")
    assert result.encoding == {"path": "reencoded", "reason": "JPEG block extension not built (test)"}
    assert result.plates == [PLATE]


def test_blocks_outside_the_photo_are_refused():
    data = jpeg("420")
    lay = jpeg_blocks.layout(data)
    rows, cols = lay.blocks_of(0)
    bad = jpeg_blocks.Blocks(np.array([0], np.int32), np.array([rows], np.int32), np.array([0], np.int32),
                             np.zeros((1, 64), np.int16))
    with pytest.raises(imaging.BadImageError, match="outside component 0"):
        jpeg_blocks.replace_blocks(data, bad)


def test_the_icc_profile_is_kept_and_exif_dropped():
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "AcmeCam"
    buf = io.BytesIO()
    Image.fromarray(texture()[:, :, ::-1]).save(buf, "JPEG", quality=90, icc_profile=icc, exif=exif.tobytes())
    data = buf.getvalue()
    out = conceal_bytes(data, Finder([PLATE]), style="solid")
    assert out.encoding["path"] == "blocks"
    assert Image.open(io.BytesIO(out.image_bytes)).info.get("icc_profile") == icc
    assert b"AcmeCam" not in out.image_bytes
    replaced, _ = replaced_pixels(data, out.image_bytes)
    changed = np.any(decode(data) != decode(out.image_bytes), axis=2)
    reach = cv2.dilate(replaced.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not (changed & ~reach).any()
