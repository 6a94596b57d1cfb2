"""Polygon checks, correction bodies and the re-render of producer/review/corrections.py, and the
queue filter of producer/review/index.py (plain values)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from plateveil import imaging
from plateveil.conceal import get_concealer
from plateveil.schema import CompletionEvent, JobStatus
from plateveil_ops.samples import render_scene
from producer.review.corrections import CorrectionError, check_polygon, parse_correction, render
from producer.review.index import QueueFilter, summary_of


def test_check_polygon_orders_clips_and_rounds():
    assert check_polygon([[50, 30], [10.04, 10], [10, 30], [50, 10]], 100, 80, 1) == \
        [[10.0, 10.0], [50.0, 10.0], [50.0, 30.0], [10.0, 30.0]]
    assert check_polygon([[-1.5, 0], [101, 0], [101, 81], [-1.5, 81]], 100, 80, 1) == \
        [[0.0, 0.0], [100.0, 0.0], [100.0, 80.0], [0.0, 80.0]]


@pytest.mark.parametrize("points, words", [
    ([[0, 0], [10, 0], [10, 10]], "4 points"),
    ([[0, 0], [10, 0], [10, 10], [0, math.nan]], "finite"),
    ([[0, 0], [10, 0], [10, 10], [0, math.inf]], "finite"),
    ([[0, 0], [10, 0], [10, 10], [True, 3]], "finite"),
    ([[0, 0], [10, 0], [10, 10], [0, 10, 3]], "finite"),
    ([[0, 0], [10, 0], [10, 90], [0, 10]], "outside the 100x80 photo"),
    ([[0, 0], [10, 10], [20, 20], [30, 30]], "convex"),
    ([[0, 0], [3, 0], [3, 3], [0, 3]], "square pixels"),
    ("not a polygon", "4 points"),
])
def test_check_polygon_refuses(points, words):
    with pytest.raises(CorrectionError, match=words) as err:
        check_polygon(points, 100, 80, 2)
    assert err.value.status == 422 and "added plate 2" in str(err.value)


@pytest.mark.parametrize("body, words", [
    (None, "JSON object"), ({}, "revision"), ({"revision": True}, "revision"), ({"revision": "1"}, "revision"),
    ({"revision": 0, "add": {}}, "add"), ({"revision": 0, "add": [[]] * 21}, "at most 20"),
    ({"revision": 0, "remove": [1.5]}, "indices"), ({"revision": 0, "remove": [1, 1]}, "twice"),
    ({"revision": 0, "style": "glitter"}, "unknown style"), ({"revision": 0, "note": 3}, "note"),
    ({"revision": 0, "extra": 1}, "unknown fields"),
])
def test_parse_correction_refuses(body, words):
    with pytest.raises(CorrectionError, match=words):
        parse_correction(body)


def test_parse_correction_keeps_what_was_asked():
    c = parse_correction({"revision": 2, "add": [[[1, 2], [3, 2], [3, 4], [1, 4]]], "remove": [0, 3],
                          "style": "pixelate", "note": "missed plate"})
    assert (c.revision, c.remove, c.style, c.note) == (2, (0, 3), "pixelate", "missed plate")
    assert c.add == (((1, 2), (3, 2), (3, 4), (1, 4)),)


def test_render_is_the_pipeline_concealment_and_encoding():
    scene = render_scene(seed=4, size=(320, 240))
    data = scene.png()
    quad = [list(p) for p in scene.plate_quad]
    out, fmt = render(data, [quad], "pixelate", 90)
    assert fmt == "png"
    decoded = imaging.decode(data)
    expected = get_concealer("pixelate").apply(decoded.image_bgr, [np.asarray(quad)])
    got = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(got, expected)                       # PNG: exact
    assert not np.array_equal(got, decoded.image_bgr)
    unchanged, _ = render(data, [], "blur", 90)
    assert np.array_equal(cv2.imdecode(np.frombuffer(unchanged, np.uint8), cv2.IMREAD_COLOR), decoded.image_bgr)


def test_summary_ignores_reviewer_plates_scores():
    plates = [{"score": 0.97}, {"score": 0.931}, {"score": None, "origin": "reviewer"}]
    assert summary_of(plates) == {"plate_count": "3", "min_score": "0.9310"}
    assert summary_of([{"score": None}]) == {"plate_count": "1", "min_score": ""}


def test_queue_filter():
    entry = {"plate_count": "1", "min_score": "0.93", "model": "m@1", "completed_at": "2026-12-01T10:00:00.000Z"}
    assert QueueFilter().matches(entry, 0.95)
    assert QueueFilter(low_score=True).matches(entry, 0.95) and not QueueFilter(low_score=True).matches(entry, 0.9)
    assert not QueueFilter(no_plate=True).matches(entry, 0.95)
    assert QueueFilter(no_plate=True).matches(entry | {"plate_count": "0", "min_score": ""}, 0.95)
    assert not QueueFilter(low_score=True).matches(entry | {"min_score": ""}, 0.95)
    assert QueueFilter(model="m@1", date="2026-12-01").matches(entry, 0.95)
    assert not QueueFilter(model="m@2").matches(entry, 0.95) and not QueueFilter(date="2026-12-02").matches(entry, 0.95)
    assert not QueueFilter(flagged=True).matches(entry, 0.95)
    reviewed = entry | {"reviewed_at": "2026-12-01T11:00:00.000Z"}
    assert not QueueFilter().matches(reviewed, 0.95) and QueueFilter(state="reviewed").matches(reviewed, 0.95)
    assert QueueFilter().matches(reviewed | {"flagged_at": "x"}, 0.95)     # flagged again: open again
    assert QueueFilter(state="all").matches(reviewed, 0.95) and not QueueFilter(state="reviewed").matches(entry, 0.95)


def test_corrected_event_round_trips_and_completions_keep_their_fields():
    done = CompletionEvent("j", JobStatus.DONE, "b", "k", "k.json", "m@1", 1, "", "t")
    assert "event" not in done.to_fields()
    assert CompletionEvent.from_fields(done.to_fields()) == done
    corrected = CompletionEvent("j", JobStatus.DONE, "b", "k", "k.json", "m@1", 2, "", "t2", event="corrected")
    assert corrected.to_fields()["event"] == "corrected"
    assert CompletionEvent.from_fields(corrected.to_fields()) == corrected
