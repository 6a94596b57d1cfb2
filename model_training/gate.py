"""The promotion quality gate of ``plateveil models promote``: what it judges a candidate on, how it measures the
candidate and production, and what it refuses.

**What it evaluates** (:class:`GateData`): the shipped golden set (``model_store/golden_set/``, 17 photos, 18
plates) unless told otherwise; labelled folders (``--golden DIR``, repeatable), each judged on its own; and/or the
validation split of every data folder under a data root (``--data-root ../shared/data``, read exactly as
``plateveil models eval --data val --data-root ...`` reads it: :func:`model_training.data.load_split`, with the
reviewed plates), judged folder by folder.

**How it measures**: the candidate and production are loaded in this one process and run on the same photos
photo by photo, alternating which goes first (:func:`model_training.evaluate.evaluate_interleaved`), so a
training run or a benchmark that loads the machine slows both alike. Small sets are timed several rounds per
photo (a photo's fastest run counts: load only ever adds time; :func:`latency_rounds`): the golden set 5
rounds, 700 validation photos 1.

**What it refuses** (:class:`GateThresholds`), each line printed with its threshold and result:

* *Floors* on all the photos together (recall@0.8 >= 0.75, spurious <= 0.35 per photo, excess <= 0.25): a
  sanity net for a model with no production to compare against, not a quality bar. They are not applied per
  folder: production itself is below them on the hardest folders, and the margins below are the real bar.
* *Margins against production, per folder, in plates.* The evaluation is deterministic (same model, same
  photos: same numbers), so a margin is not there for sampling noise; it absorbs the churn of plates whose
  coverage sits at the 0.8 line (a retrained model moves some across in both directions) and lets a model that
  is better everywhere else through a lost plate or two. A missed readable plate is a privacy failure, so the
  margin is small and counted where it happens: on each folder the candidate may find at most
  ``max(1 plate, 2% of the folder's plates)`` fewer plates at IoU 0.8 than production (the golden set's 18:
  1 plate, as the old 0.06; the oi-streets validation split's ~350: 7), and may add at most
  ``max(1 region, 0.02 per photo)`` spurious regions (the product's target is 0.08 per photo in total, so a
  0.02 rise is a quarter of it), and its excess may rise at most 0.05. Gains on one folder do not pay for
  losses on another: each folder is a kind of photo the product must handle. When there are several
  folders, the same margins apply to them all together as well.
* *Which plates the recall margins count.* Per folder: the **readable** plates, at least 40 px wide in the
  photo (``evaluate.READABLE_WIDTH``, the issue's own "readable plate" and its per-folder targets), where the
  report has plate widths; on all the folders together (and on a single set such as the golden set): the
  readable plates **and** every plate, small ones included. Why: a 15-35 px plate of a car parked 40 m away
  cannot be read, and counting those per folder refused a candidate (issue 35's det-b2 + lm-g) that hides
  12 more readable plates on listing photos and 3 fewer of oi-streets' 200, with fewer spurious regions in
  every folder, because it hides 20 fewer of oi-streets' distant plates; its loss of small plates is still
  bounded, by the all-folders margin (2% of ~970 plates). A report without widths (an older or injected
  one) counts every plate per folder, as before.
* *Latency against production*: the candidate's p50 and p95 per photo (the pipeline's own total, decode to
  encode, as a worker measures it) at most production's x 1.2 + 2 ms. Measured on this shared 2-core machine
  (``runs/gate_noise.py``: one model loaded twice, the golden set, interleaved, load 2-5 from other work), the
  two copies of one model usually come out within 5% of each other, but up to 15-36% apart on p95 and, once,
  31% on p50: about one measurement in ten on a busy machine. So a candidate over the latency margin is
  measured again (interleaved, as before) and refused for latency only when the same figure is over the
  margin both times (``promote_with_gate``); the gate prints the machine's load beside the table. 20% sits
  well below a model twice as slow and is about what an operator absorbs without resizing the workers; the
  2 ms keeps scheduler jitter on fast models (20 ms photos) from deciding. Issue 35's first 3.0.0 candidate
  (i35b's det-b + lm-f, detector 0.1) measured 1.2-1.3x 2.0.0 this way on the golden set and on the validation
  split (1.8x on the benchmark's 1280x720 photos) and was refused on latency, which makes such an extra cost a
  person's decision rather than the gate's: ``--force``, or ``PLATEVEIL_GATE_MAX_LATENCY_RISE``. The shipped
  3.0.0 (detector 0.15) measures at 2.0.0's latency and passes.
  Without a production model there is nothing to compare with: no latency check, the floors only.

Every threshold is a ``PLATEVEIL_GATE_*`` setting (``model_training.registry_cli.GateSettings``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# a report: {"overall": metrics, "per_folder": {folder: metrics}} (``EvalReport.to_dict()``); metrics as
# ``model_training.evaluate.summarise`` returns them
Report = dict[str, Any]
# models by version, what to evaluate -> a report by version (the seam tests inject)
Evaluate = Callable[[dict[str, Any], "GateData"], dict[str, Report]]

# (metric key, label, format)
GATE_COLUMNS = (
    ("recall_08", "recall@0.8", "{:.3f}"),
    ("recall_05", "recall@0.5", "{:.3f}"),
    ("spurious_per_image", "spurious/img", "{:.3f}"),
    ("excess", "excess", "{:.3f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p95_ms", "p95 ms", "{:.1f}"),
)
LATENCY_KEYS = ("p50_ms", "p95_ms")
ALL_FOLDERS = "all folders"
# which plates a recall margin counts: the readable ones (at least ``evaluate.READABLE_WIDTH``, 40 px, wide in
# the photo) or every labelled plate; (recall key, plate count key) of a report's metrics
READABLE, ALL_SIZES = "readable", "all sizes"
PLATE_COUNTS = {READABLE: ("recall_08_40px", "n_plates_40px"), ALL_SIZES: ("recall_08", "n_plates")}
# timed runs per model the latency is taken over (at least): the golden set's 17 photos get 5 rounds each
MIN_TIMED_RUNS = 80
MAX_ROUNDS = 5


def latency_rounds(n_photos: int, rounds: int = 0) -> int:
    """Timed runs per photo and model: ``rounds`` if set, else enough for MIN_TIMED_RUNS (at most MAX_ROUNDS)."""
    if rounds > 0:
        return rounds
    return max(1, min(MAX_ROUNDS, math.ceil(MIN_TIMED_RUNS / max(n_photos, 1))))


@dataclass(frozen=True)
class GateData:
    """The labelled photos the gate evaluates: ``folders`` (each judged on its own, read with ``fmt``) and the
    validation split of every data folder under ``data_root`` (``labels``: reviewed or given, as
    ``plateveil models eval``); ``max_photos`` > 0: at most that many photos per folder (a fixed, name-hashed
    subset, the same for every model); ``rounds``: timed runs per photo (0: :func:`latency_rounds`)."""

    folders: tuple[Path, ...] = ()
    fmt: str = "auto"
    data_root: Path | None = None
    labels: str = "reviewed"
    max_photos: int = 0
    rounds: int = 0

    def describe(self) -> str:
        parts = [str(f) for f in self.folders]
        if self.data_root is not None:
            parts.append(f"the validation split of each data folder under {self.data_root} ({self.labels} labels)")
        text = " and ".join(parts) or "nothing"
        return text + (f", at most {self.max_photos} photos per folder" if self.max_photos else "")

    def check(self) -> str | None:
        """What is wrong with it (a folder that is not one), else None."""
        for folder in [*self.folders, *([self.data_root] if self.data_root is not None else [])]:
            if not Path(folder).is_dir():
                return f"the gate's folder {folder} is not a folder"
        if not self.folders and self.data_root is None:
            return "the gate has no folder to evaluate"
        return None


def _subset(samples: list[Any], n: int) -> list[Any]:
    if n <= 0 or len(samples) <= n:
        return samples
    def key(s: Any) -> str:
        return hashlib.sha256(f"{s.source}/{s.path.name}".encode()).hexdigest()
    keep = {id(s) for s in sorted(samples, key=key)[:n]}
    return [s for s in samples if id(s) in keep]


def load_gate_folders(data: GateData) -> dict[str, list[Any]]:
    """``{folder name: samples}`` in report order (``open-lpr`` and ``oi-streets`` first), folders without photos
    left out; ValueError when no folder has any (a gate on nothing must not pass)."""
    from model_training.data import load_folder, load_split
    from model_training.evaluate import folder_order

    folders: dict[str, list[Any]] = {}
    for path in data.folders:
        name = Path(path).name or str(path)
        while name in folders:
            name += "'"
        folders[name] = load_folder(path, data.fmt)
    if data.data_root is not None:
        by_folder: dict[str, list[Any]] = {}
        for s in load_split(data.data_root, reviewed=data.labels == "reviewed")[1]:
            by_folder.setdefault(Path(s.source).parts[0], []).append(s)
        for name in folder_order(by_folder):
            folders[name if name not in folders else f"{name} (val)"] = by_folder[name]
    folders = {name: _subset(samples, data.max_photos) for name, samples in folders.items() if samples}
    if not folders:
        raise ValueError(f"no labelled photos in {data.describe()}")
    return folders


def default_evaluate(models: dict[str, Any], data: GateData) -> dict[str, Report]:
    """Every model on ``data``'s photos, interleaved (:func:`model_training.evaluate.evaluate_interleaved`);
    the overall metrics carry ``latency_rounds``."""
    from model_training.evaluate import evaluate_interleaved

    folders = load_gate_folders(data)
    where = {id(s): name for name, samples in folders.items() for s in samples}
    samples = [s for group in folders.values() for s in group]
    rounds = latency_rounds(len(samples), data.rounds)
    reports = evaluate_interleaved(models, samples, rounds=rounds, group=lambda s: where[id(s)])
    out = {}
    for version, report in reports.items():
        d = report.to_dict()
        d["per_folder"] = {name: d["per_folder"][name] for name in folders if name in d["per_folder"]}
        d["overall"]["latency_rounds"] = rounds
        out[version] = d
    return out


def _count(metrics: dict[str, Any], rate: str, total: str) -> tuple[int, int]:
    """(count, total): plates found from recall and n_plates, regions from spurious/img and n_images."""
    n = int(metrics.get(total, 0))
    return int(round(float(metrics[rate]) * n)), n


@dataclass(frozen=True)
class GateThresholds:
    """Absolute floors, how much worse than production a candidate may be per folder (the margins), and how
    much slower (the module docstring says why these values)."""

    min_recall_08: float = 0.75
    max_spurious: float = 0.35
    max_excess: float = 0.25
    max_recall_drop: float = 0.02  # share of a folder's plates the candidate may lose...
    max_recall_drop_plates: int = 1  # ...or this many plates, whichever is more
    max_spurious_rise: float = 0.02  # more spurious regions per photo of a folder...
    max_spurious_rise_regions: int = 1  # ...or this many regions, whichever is more
    max_excess_rise: float = 0.05
    max_latency_rise: float = 0.20  # p50 and p95 at most production's x (1 + this)...
    latency_slack_ms: float = 2.0  # ...+ this

    @classmethod
    def from_settings(cls, settings: Any) -> GateThresholds:
        """From a ``GateSettings`` (its ``gate_*`` fields of the same names)."""
        return cls(**{name: getattr(settings, f"gate_{name}") for name in cls.__dataclass_fields__})

    # -- the limits ---------------------------------------------------------------------------------------

    def plates_allowed(self, n_plates: int) -> int:
        return max(self.max_recall_drop_plates, math.floor(self.max_recall_drop * n_plates + 1e-9))

    def regions_allowed(self, n_images: int) -> int:
        return max(self.max_spurious_rise_regions, math.floor(self.max_spurious_rise * n_images + 1e-9))

    def latency_limit(self, production_ms: float) -> float:
        return production_ms * (1 + self.max_latency_rise) + self.latency_slack_ms

    # -- the checks, one line per miss --------------------------------------------------------------------

    def floor_failures(self, metrics: dict[str, Any]) -> list[str]:
        out = []
        if float(metrics["recall_08"]) < self.min_recall_08:
            out.append(f"recall@0.8 {float(metrics['recall_08']):.3f} < {self.min_recall_08}")
        if float(metrics["spurious_per_image"]) > self.max_spurious:
            out.append(f"spurious/img {float(metrics['spurious_per_image']):.3f} > {self.max_spurious}")
        if float(metrics["excess"]) > self.max_excess:
            out.append(f"excess {float(metrics['excess']):.3f} > {self.max_excess}")
        return out

    def margin_failures(self, candidate: dict[str, Any], production: dict[str, Any], folder: str = "",
                        sizes: tuple[str, ...] = (READABLE, ALL_SIZES)) -> list[str]:
        """Where ``candidate`` is worse than ``production`` (same photos) beyond the margins, in plates and regions.
        ``sizes``: which plates the recall margin counts: ``READABLE`` (at least 40 px wide, where the report
        has them) and/or ``ALL_SIZES``."""
        where = f"{folder}: " if folder else ""
        out = []
        if READABLE in sizes and not all("n_plates_40px" in m for m in (candidate, production)):
            # a report without plate widths (an injected or older one): every plate counts
            sizes = tuple(dict.fromkeys(ALL_SIZES if size == READABLE else size for size in sizes))
        for size in sizes:
            rate, total = PLATE_COUNTS[size]
            c_found, _ = _count(candidate, rate, total)
            p_found, n_plates = _count(production, rate, total)
            lost, allowed = p_found - c_found, self.plates_allowed(n_plates)
            if lost > allowed:
                what = "plates >= 40 px" if size == READABLE else "plates"
                out.append(f"{where}recall@0.8 loses {lost} {what} ({p_found} -> {c_found} of {n_plates}, "
                           f"{float(production[rate]):.3f} -> {float(candidate[rate]):.3f}; "
                           f"margin {allowed} plate{'s' if allowed != 1 else ''})")
        c_sp, _ = _count(candidate, "spurious_per_image", "n_images")
        p_sp, n_images = _count(production, "spurious_per_image", "n_images")
        more, allowed = c_sp - p_sp, self.regions_allowed(n_images)
        if more > allowed:
            out.append(f"{where}spurious regions +{more} ({p_sp} -> {c_sp} on {n_images} photos, "
                       f"{float(production['spurious_per_image']):.3f} -> {float(candidate['spurious_per_image']):.3f}"
                       f"/img; margin {allowed} region{'s' if allowed != 1 else ''})")
        c_ex, p_ex = float(candidate["excess"]), float(production["excess"])
        if c_ex > p_ex + self.max_excess_rise + 1e-9:
            out.append(f"{where}excess {c_ex:.3f} is {c_ex - p_ex:.3f} above production's {p_ex:.3f} "
                       f"(margin {self.max_excess_rise})")
        return out

    def latency_misses(self, candidate: dict[str, Any], production: dict[str, Any]) -> dict[str, str]:
        """``{"p50_ms"/"p95_ms": what is over the latency margin}``."""
        out = {}
        for key in LATENCY_KEYS:
            if key not in candidate or key not in production:
                continue
            c, p = float(candidate[key]), float(production[key])
            if c > self.latency_limit(p) + 1e-9:
                out[key] = (f"latency: {key[:3]} {c:.1f} ms > {self.latency_limit(p):.1f} ms allowed (production "
                            f"{p:.1f} ms x {1 + self.max_latency_rise:g} + {self.latency_slack_ms:g} ms)")
        return out

    def latency_failures(self, candidate: dict[str, Any], production: dict[str, Any]) -> list[str]:
        return list(self.latency_misses(candidate, production).values())

    def failures(self, metrics: dict[str, Any], production: dict[str, Any] | None = None) -> list[str]:
        """What ``metrics`` (one set of photos) misses, one line each (empty: it passes); ``production``: the
        production model's metrics on the same photos, for the margins and the latency."""
        out = self.floor_failures(metrics)
        if production is not None:
            out += self.latency_failures(metrics, production) + self.margin_failures(metrics, production)
        return out

    def judge(self, candidate: Report, production: Report | None) -> list[str]:
        """What the candidate's report misses: the floors on all the photos, the latency, the margins on each
        folder and (with several folders) on all of them together."""
        out = self.floor_failures(candidate["overall"])
        if production is None:
            return out
        out += self.latency_failures(candidate["overall"], production["overall"])
        folders = candidate.get("per_folder") or {}
        several = len(folders) > 1
        for name, metrics in folders.items():
            if name in (production.get("per_folder") or {}):
                out += self.margin_failures(metrics, production["per_folder"][name], name,
                                            sizes=(READABLE,) if several else (READABLE, ALL_SIZES))
        if len(folders) != 1:
            out += self.margin_failures(candidate["overall"], production["overall"],
                                        ALL_FOLDERS if len(folders) > 1 else "")
        return out

    # -- the table's words --------------------------------------------------------------------------------

    def describe(self, key: str, with_production: bool = True) -> str:
        if key in LATENCY_KEYS:
            if not with_production:
                return "not checked (no production)"
            return f"<= prod x {1 + self.max_latency_rise:g} + {self.latency_slack_ms:g} ms"
        floor = {"recall_08": f">= {self.min_recall_08}", "spurious_per_image": f"<= {self.max_spurious}",
                 "excess": f"<= {self.max_excess}"}.get(key, "")
        margin = {"recall_08": f"prod - max({self.max_recall_drop_plates}, {self.max_recall_drop:.0%}) plates",
                  "spurious_per_image": f"prod + max({self.max_spurious_rise_regions}, "
                                        f"{self.max_spurious_rise}/img) regions",
                  "excess": f"prod + {self.max_excess_rise}"}.get(key)
        if with_production and margin:
            return f"{floor}, {'>=' if key == 'recall_08' else '<='} {margin}"
        return floor

    def row_result(self, key: str, candidate: dict[str, Any], production: dict[str, Any] | None) -> str:
        if key in LATENCY_KEYS:
            if production is None:
                return ""
            return "FAIL" if self.latency_failures({key: candidate[key]}, {key: production[key]}) else "ok"
        if key not in ("recall_08", "spurious_per_image", "excess"):
            return ""
        floors = self.floor_failures(dict({"recall_08": 1.0, "spurious_per_image": 0.0, "excess": 0.0},
                                          **{key: candidate[key]}))
        margins = []
        if production is not None:
            label = {"recall_08": "recall", "spurious_per_image": "spurious", "excess": "excess"}[key]
            margins = [m for m in self.margin_failures(candidate, production) if label in m]
        return "FAIL" if floors or margins else "ok"


def _render(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def comparison_table(candidate: tuple[str, dict[str, Any]], production: tuple[str, dict[str, Any]] | None,
                     thresholds: GateThresholds) -> str:
    """A plain-text table of the metrics on all the photos: one row per metric, candidate vs production, the
    change, the limits and whether the candidate passes them (the recall and spurious margins as they apply
    to all the photos together; :func:`folder_table` has them per folder)."""
    headers = ["metric", f"candidate {candidate[0]}"]
    if production is not None:
        headers += [f"production {production[0]}", "change"]
    headers += ["threshold", "result"]
    rows = [headers]
    prod_metrics = production[1] if production is not None else None
    for key, label, fmt in GATE_COLUMNS:
        if key not in candidate[1]:
            continue
        value = float(candidate[1][key])
        row = [label, fmt.format(value)]
        if production is not None:
            prod = float(production[1].get(key, float("nan")))
            row += [fmt.format(prod), ("{:+" + fmt[2:]).format(value - prod)]
        limit = thresholds.describe(key, production is not None)
        row += [limit, thresholds.row_result(key, candidate[1], prod_metrics) if limit else ""]
        rows.append(row)
    lines = _render(rows)
    n = candidate[1].get("n_images")
    if n is not None:
        rounds = candidate[1].get("latency_rounds")
        timing = (f" p50/p95: the fastest of {rounds} timed run(s) per photo"
                  f"{', interleaved with production' if production is not None else ''}") if rounds else ""
        lines.append(f"({n} images, {candidate[1].get('n_plates', '?')} plates){timing}")
    return "\n".join(lines)


def folder_table(candidate: tuple[str, Report], production: tuple[str, Report] | None,
                 thresholds: GateThresholds) -> str:
    """One row per folder (and all of them together): photos, plates, plates found at IoU 0.8 and spurious
    regions, candidate against production with the change and the margin in plates and regions, excess, and
    whether the folder passes its margins."""
    per_folder = dict(candidate[1].get("per_folder") or {})
    prod_folders = production[1].get("per_folder") or {} if production is not None else {}
    if len(per_folder) > 1:
        per_folder[ALL_FOLDERS] = candidate[1]["overall"]
        prod_folders = {**prod_folders, ALL_FOLDERS: production[1]["overall"]} if production is not None else {}
    if production is None:
        rows = [["folder", "photos", "plates", "found@0.8", "recall@0.8", "spurious", "spurious/img", "excess"]]
        for name, m in per_folder.items():
            found, n = _count(m, "recall_08", "n_plates")
            sp, photos = _count(m, "spurious_per_image", "n_images")
            rows.append([name, str(photos), str(n), str(found), f"{float(m['recall_08']):.3f}", str(sp),
                         f"{float(m['spurious_per_image']):.3f}", f"{float(m['excess']):.3f}"])
        return "\n".join(_render(rows))
    c, p = candidate[0], production[0]
    several = len(per_folder) > 2  # folders + the "all folders" row
    rows = [["folder", "photos", "plates>=40", f"found {c}", f"found {p}", "change", "margin",
             "plates", f"found {c}", f"found {p}", "change", "margin",
             f"spurious {c}", f"spurious {p}", "change", "margin", f"excess {c}", f"excess {p}", "result"]]
    for name, m in per_folder.items():
        pm = prod_folders.get(name)
        if pm is None:
            continue
        cells = [name, str(int(pm.get("n_images", 0)))]
        for size in (READABLE, ALL_SIZES):
            rate, total = PLATE_COUNTS[size]
            if total not in m or total not in pm:
                cells += ["-"] * 5
                continue
            found, _ = _count(m, rate, total)
            p_found, n = _count(pm, rate, total)
            readable_known = all("n_plates_40px" in x for x in (m, pm))
            judged = size == READABLE or not several or name == ALL_FOLDERS or not readable_known
            cells += [str(n), str(found), str(p_found), f"{found - p_found:+d}",
                      f"-{thresholds.plates_allowed(n)}" if judged else "(not judged)"]
        sp, _ = _count(m, "spurious_per_image", "n_images")
        p_sp, photos = _count(pm, "spurious_per_image", "n_images")
        sizes = (READABLE,) if several and name != ALL_FOLDERS else (READABLE, ALL_SIZES)
        result = "FAIL" if thresholds.margin_failures(m, pm, sizes=sizes) else "ok"
        rows.append(cells + [str(sp), str(p_sp), f"{sp - p_sp:+d}", f"+{thresholds.regions_allowed(photos)}",
                             f"{float(m['excess']):.3f}", f"{float(pm['excess']):.3f}", result])
    return "\n".join(_render(rows))
