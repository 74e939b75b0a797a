"""The HTML match report: one self-contained page, each match as a photo pair, every text escaped."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageDraw, ImageOps

from catalog import verify
from catalog.lookalikes import Lookalike
from catalog.report import decided_by, decided_distance, format_value, linkage_distance, rule_of_run
from catalog.store import QueryResult, Store

THUMBNAIL_PIXELS = 240

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1b2a33; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.pair { display: flex; gap: 1rem; align-items: flex-start; border-top: 1px solid #ccd; padding: .8rem 0; }
.pair figure { margin: 0; width: 250px; }
.pair figure.keypoints { width: auto; } .pair figure.keypoints img { max-width: 560px; }
.pair figcaption { font-size: .75rem; word-break: break-all; }
.verdict { font-size: .9rem; min-width: 12rem; }
.review { color: #a15c00; font-weight: bold; }
.matched { color: #1f6f3a; } .new { color: #345; }
table { border-collapse: collapse; font-size: .85rem; }
td, th { border: 1px solid #ccd; padding: .2rem .5rem; }
img { max-width: 240px; max-height: 240px; display: block; }
.missing { width: 240px; height: 120px; background: #eee; display: flex; align-items: center;
           justify-content: center; font-size: .8rem; }
"""


def _text(value: Any) -> str:
    return html.escape(format_value(value), quote=True)


def open_upright(source: str | IO[bytes], draft_size: tuple[int, int]) -> Image.Image:
    """The photo (a path or its bytes) decoded at no less than `draft_size` (JPEG draft mode),
    EXIF-upright, RGB."""
    with Image.open(source) as image:
        image.draft("RGB", draft_size)
        return ImageOps.exif_transpose(image).convert("RGB")


def _jpeg_source(image: Image.Image, quality: int) -> str:
    """A data: URI for an <img>, so the page stays self-contained."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail(path: str | None) -> str:
    """An <img> with the photo embedded as a small JPEG, or a grey box saying it is gone."""
    if path is None:
        return '<div class="missing">no photo</div>'
    try:
        small = open_upright(path, (THUMBNAIL_PIXELS * 2, THUMBNAIL_PIXELS * 2))
        small.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    except (OSError, SyntaxError, ValueError):
        return '<div class="missing">photo not readable here</div>'
    return f'<img alt="{_text(Path(path).name)}" src="{_jpeg_source(small, 80)}">'


# Lines cycle through colours so that crossing correspondences stay tellable apart.
_LINE_COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))


def keypoint_pair(
    path: str, matched_path: str, features: verify.LocalFeatures, matched_features: verify.LocalFeatures
) -> str:
    """Both photos side by side with a line between each pair of keypoints that agree (RANSAC
    inliers of matching them now); "" when none do. For sightings indexed before their decisive
    keypoints were kept (`decisive_pair` draws those)."""
    agreement = verify.match(features, matched_features)
    return decisive_pair(
        path,
        matched_path,
        verify.DecisiveLines(agreement.lines, features.size, matched_features.size),
        "skin-pattern keypoints agree",
    )


def decisive_pair(path: str, matched_path: str, decisive: verify.DecisiveLines, what: str) -> str:
    """Both photos side by side with a line between each pair of keypoints in `decisive`, so a
    reader sees which marks made the two photos the same animal; "" when there are none."""
    if len(decisive.lines) == 0:
        return ""
    try:
        left = open_upright(path, decisive.size)
        right = open_upright(matched_path, decisive.matched_size)
    except (OSError, SyntaxError, ValueError):
        return ""
    canvas = draw_decisive(left, right, decisive, THUMBNAIL_PIXELS)
    return (
        f"<figure class='keypoints'><img alt='matching keypoints' src='{_jpeg_source(canvas, 85)}'>"
        f"<figcaption>{len(decisive.lines)} {_text(what)} (lines join them)</figcaption></figure>"
    )


def draw_decisive(
    left: Image.Image, right: Image.Image, decisive: verify.DecisiveLines, height: int
) -> Image.Image:
    """The two photos side by side, `height` pixels high, with a line between each pair of
    keypoints in `decisive` (keypoints are in pixels of the image they were found in)."""
    size, matched_size = decisive.size, decisive.matched_size
    left_scale, right_scale = height / size[1], height / matched_size[1]
    left = left.resize((max(1, round(size[0] * left_scale)), height), Image.Resampling.BILINEAR)
    right = right.resize((max(1, round(matched_size[0] * right_scale)), height), Image.Resampling.BILINEAR)
    gap = 12
    canvas = Image.new("RGB", (left.width + gap + right.width, height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    draw = ImageDraw.Draw(canvas)
    for number, (xa, ya, xb, yb) in enumerate(decisive.lines.tolist()):
        colour = _LINE_COLOURS[number % len(_LINE_COLOURS)]
        start = (xa * left_scale, ya * left_scale)
        end = (left.width + gap + xb * right_scale, yb * right_scale)
        draw.line((start, end), fill=colour, width=1)
        for x, y in (start, end):
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), outline=colour)
    return canvas


def _figure(path: str | None, caption: str) -> str:
    return f"<figure>{thumbnail(path)}<figcaption>{caption}</figcaption></figure>"


def matched_keypoints(store: Store, sightings: QueryResult) -> dict[str, verify.LocalFeatures]:
    """Cached keypoints of both photos of every keypoint-verified sighting (none without OpenCV)."""
    if not verify.available():
        return {}
    rows = sightings.records()
    # Only sightings indexed before their decisive keypoints were kept need matching again; those
    # were all verified with SIFT (other detectors came later, and keep their lines).
    photo_ids = {
        row[key]
        for row in rows
        if row["inliers"] and row.get("keypoint_lines") is None
        for key in ("photo_id", "matched_photo_id")
    }
    cached = store.local_features(sorted(photo_ids), verify.DETECTOR)
    return {photo_id: verify.LocalFeatures.from_bytes(blob) for photo_id, blob in cached.items()}


def run_page(
    summary: QueryResult,
    sightings: QueryResult,
    errors: QueryResult,
    histories: dict[str, QueryResult],
    *,
    features: dict[str, verify.LocalFeatures] | None = None,
    lookalike_of: dict[str, Lookalike] | None = None,
) -> str:
    """The report of one run: matches as side-by-side pairs, new individuals, errors, timelines.

    With `features` (cached keypoints by photo id) and OpenCV, verified pairs also show the
    keypoints that agreed; with `lookalike_of` (a new individual's first look-alike), the new
    individuals say whom they look most like."""
    features = features or {}
    lookalike_of = lookalike_of or {}
    run = summary.records()[0]
    rows = sightings.records()
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        # No script may run in this page, whatever a file name says.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        f"<title>finprint run {_text(run['run_id'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>finprint run {_text(run['run_id'])}</h1>",
        f"<p>Model {_text(run['model_version'])}. {_text(run['photos_new'])} new photos, "
        f"{_text(run['photos_failed'])} unreadable.</p>",
        f"<p class='rule'>Decided by: {_text(rule_of_run(run))}</p>",
    ]
    # A new individual's nearest photo is only worth a look when it was a near miss (review).
    threshold = float(run["distance_threshold"])
    paired = [r for r in rows if r["matched_path"] is not None and (r["status"] != "new")]
    parts.append(f"<h2>Matches and near misses ({len(paired)})</h2>")
    for row in paired:
        status = str(row["status"])
        who = _text(row["individual_id"])
        if row.get("second_individual_id"):
            who += f" or {_text(row['second_individual_id'])}"
        parts.append(
            "<div class='pair'>"
            + _figure(row["path"], f"new: {_text(row['path'])}")
            + _figure(row["matched_path"], f"best earlier: {_text(row['matched_path'])}")
            + f"<div class='verdict'><span class='{_text(status)}'>{_text(status)}</span><br>"
            f"individual {who}<br>distance to this photo {_text(row['distance'])}"
            + (
                f"<br>decided on the mean distance {_text(linkage)} to the fish's photos "
                "(first seen in this run)"
                if (linkage := linkage_distance(row)) is not None
                else ""
            )
            + ("" if row.get("probability") is None else f"<br>P(same) {row['probability']:.2f}")
            + ("" if row.get("inliers") is None else f"<br>keypoints agreeing {_text(row['inliers'])}")
            + f"<br>decided by {_text(decided_by(row))}"
            + (
                " (nearest; over the threshold)"
                if (decided := decided_distance(row)) is not None and decided >= threshold
                else ""
            )
            + "</div>"
            + _keypoints_of(row, features)
            + "</div>"
        )
    new = [r for r in rows if r["status"] == "new"]
    parts.append(
        f"<h2>New individuals ({len(new)})</h2><table><tr><th>individual</th><th>photo</th>"
        "<th>looks most like (nearest photos' distance; same fish: finprint merge)</th></tr>"
    )
    for r in new:
        alike = lookalike_of.get(str(r["individual_id"]))
        looks = "" if alike is None else f"{_text(alike.candidate_id)} ({alike.distance:.3f})"
        parts.append(
            f"<tr><td>{_text(r['individual_id'])}</td><td>{_text(r['path'])}</td><td>{looks}</td></tr>"
        )
    parts.append("</table>")
    if errors.rows:
        parts.append(
            f"<h2>Unreadable photos ({len(errors.rows)})</h2><table><tr><th>path</th><th>reason</th></tr>"
        )
        parts += [f"<tr><td>{_text(p)}</td><td>{_text(reason)}</td></tr>" for p, reason in errors.rows]
        parts.append("</table>")
    for individual, history in histories.items():
        parts.append(f"<h2 id='{_text(individual)}'>{_text(individual)}: timeline</h2><table><tr>")
        parts += [f"<th>{_text(c)}</th>" for c in ("date", "site", "side", "photo", "distance", "decision")]
        parts.append("</tr>")
        for record in history.records():
            cells = (record["taken_at"], record["site"], record["side"], record["path"], record["distance"],
                     record["status"])  # fmt: skip
            parts.append("<tr>" + "".join(f"<td>{_text(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _keypoints_of(row: dict[str, Any], features: dict[str, verify.LocalFeatures]) -> str:
    if row["path"] is None or row["matched_path"] is None:
        return ""
    if row.get("keypoint_lines") is not None:
        decisive = verify.DecisiveLines.from_bytes(bytes(row["keypoint_lines"]))
        return decisive_pair(row["path"], row["matched_path"], decisive, "keypoints decided this match")
    mine, theirs = features.get(row.get("photo_id") or ""), features.get(row.get("matched_photo_id") or "")
    if mine is None or theirs is None:
        return ""
    return keypoint_pair(row["path"], row["matched_path"], mine, theirs)
