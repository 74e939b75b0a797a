"""Procedural fish photos: individual skin patterns, two flanks, head and body crops."""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIDES = ("left", "right")
CROPS = ("body", "head")
_CANVAS_WIDTH = 512
_CANVAS_HEIGHT = 256
# Fraction of the fish's length (from the snout) that a head crop keeps.
_HEAD_FRACTION = 0.4


@dataclass(frozen=True)
class Site:
    """A survey site with its position (decimal degrees)."""

    name: str
    latitude: float
    longitude: float


DEMO_SITES = (
    Site("Skarholmen", 60.1051, 5.2231),
    Site("Flodevigen", 58.4254, 8.7519),
    Site("Hillesoy", 60.2962, 5.0167),
)


@dataclass(frozen=True)
class Traps:
    """What real archives put in a photo besides the animal, drawn so that benches and the demo
    measure what it does to keypoint verification: every fish laid on one measuring board with a
    ruler and a colour card, a logo and date imprint stamped on every photo, and some photos of
    two fish side by side cut twice (a crop for each, each crop holding part of the other fish)."""

    board: bool = False
    stamp: bool = False
    # The share of each survey's fish photographed beside another fish, that photo cut twice.
    two_fish_share: float = 0.0

    @classmethod
    def every(cls) -> Traps:
        """All of them at once, as `finprint synthesize --traps` draws them."""
        return cls(board=True, stamp=True, two_fish_share=0.25)

    @property
    def any(self) -> bool:
        return self.board or self.stamp or self.two_fish_share > 0


NO_TRAPS = Traps()
# The one board every trapped photo is taken on: the same ruler and card under every fish.
_BOARD_SEED = 424242
_BOARD_SIZE = (900, 480)


@dataclass(frozen=True)
class Fish:
    """One individual: body shape and colours shared by both flanks, one pattern seed per flank."""

    fish_id: str
    seed: int
    aspect: float
    body_rgb: tuple[int, int, int]
    belly_rgb: tuple[int, int, int]
    mark_rgb: tuple[int, int, int]
    fin_rgb: tuple[int, int, int]


def make_fish(fish_id: str, seed: int) -> Fish:
    """Draw an individual's shape and palette from its seed."""
    rng = np.random.default_rng([seed, 0])
    hue_shift = rng.uniform(-1, 1)
    body = _clip_rgb(np.array([110, 120, 70]) + rng.normal(0, 25, 3) + hue_shift * np.array([30, -10, -20]))
    belly = _clip_rgb(np.array([200, 190, 140]) + rng.normal(0, 20, 3))
    mark = _clip_rgb(np.array([40, 70, 50]) + rng.normal(0, 30, 3) + hue_shift * np.array([60, 10, 0]))
    fin = _clip_rgb(np.array([150, 120, 80]) + rng.normal(0, 30, 3))
    return Fish(fish_id, seed, float(rng.uniform(2.3, 3.0)), body, belly, mark, fin)


def _clip_rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.clip(values, 0, 255))
    return (r, g, b)


def _body_outline(fish: Fish) -> tuple[list[tuple[float, float]], float, float, float]:
    """Polygon of the body (head at the left) and the x range and centre line it spans."""
    length = _CANVAS_WIDTH * 0.78
    x0 = _CANVAS_WIDTH * 0.06
    cy = _CANVAS_HEIGHT / 2
    half_height = length / fish.aspect / 2
    top, bottom = [], []
    for i in range(41):
        u = i / 40
        profile = math.sin(math.pi * min(1.0, u**0.75 * 1.02)) ** 0.8
        profile = max(profile, 0.22 if u > 0.9 else 0.0)
        x = x0 + u * length
        top.append((x, cy - half_height * profile * 1.05))
        bottom.append((x, cy + half_height * profile * 0.95))
    return top + bottom[::-1], x0, x0 + length, cy


def _flank_pattern(fish: Fish, side: str, draw: ImageDraw.ImageDraw, x0: float, x1: float) -> None:
    """Paint the flank's individual marks: spots, lines and blotches, seeded per side."""
    rng = np.random.default_rng([fish.seed, 1 + SIDES.index(side)])
    length = x1 - x0
    cy = _CANVAS_HEIGHT / 2
    half_height = length / fish.aspect / 2
    mark = fish.mark_rgb
    light = _clip_rgb(np.array(fish.belly_rgb) * 1.1 + 20)
    for _ in range(int(rng.integers(3, 7))):
        # Blotches: irregular dark patches, the coarse part of the fingerprint.
        cx = x0 + rng.uniform(0.15, 0.9) * length
        cyy = cy + rng.uniform(-0.6, 0.6) * half_height
        radius = rng.uniform(0.07, 0.16) * half_height * 2
        angles = np.sort(rng.uniform(0, 2 * math.pi, 9))
        points = [
            (
                cx + radius * rng.uniform(0.6, 1.2) * math.cos(a),
                cyy + radius * rng.uniform(0.5, 1.0) * math.sin(a),
            )
            for a in angles
        ]
        draw.polygon(points, fill=mark)
    for _ in range(int(rng.integers(2, 5))):
        # Wavy lines, as on a wrasse's cheek and flank.
        start_x = x0 + rng.uniform(0.02, 0.6) * length
        start_y = cy + rng.uniform(-0.7, 0.7) * half_height
        direction = rng.uniform(-0.6, 0.6)
        span = rng.uniform(0.15, 0.4) * length
        amplitude = rng.uniform(2, 9)
        wavelength = rng.uniform(20, 60)
        line = [
            (
                start_x + t * span,
                start_y + direction * t * span + amplitude * math.sin(t * span / wavelength * 6.28),
            )
            for t in np.linspace(0, 1, 24)
        ]
        draw.line(line, fill=light if rng.random() < 0.5 else mark, width=int(rng.integers(3, 7)))
    for _ in range(int(rng.integers(12, 30))):
        # Spots: fine marks that make two similar fish distinguishable.
        cx = x0 + rng.uniform(0.05, 0.95) * length
        cyy = cy + rng.uniform(-0.85, 0.85) * half_height
        radius = rng.uniform(2.5, 7.5)
        colour = light if rng.random() < 0.35 else mark
        draw.ellipse([cx - radius, cyy - radius, cx + radius, cyy + radius], fill=colour)


def render_flank(fish: Fish, side: str) -> Image.Image:
    """The fish's flank on a transparent canvas; a right flank faces right, as photographed."""
    outline, x0, x1, cy = _body_outline(fish)
    length = x1 - x0
    half_height = length / fish.aspect / 2
    fish_layer = Image.new("RGBA", (_CANVAS_WIDTH, _CANVAS_HEIGHT), (0, 0, 0, 0))
    draw = ImageDraw.Draw(fish_layer)
    tail = [
        (x1 - 4, cy - half_height * 0.18),
        (x1 + length * 0.16, cy - half_height * 0.85),
        (x1 + length * 0.12, cy),
        (x1 + length * 0.16, cy + half_height * 0.85),
        (x1 - 4, cy + half_height * 0.18),
    ]
    draw.polygon(tail, fill=fish.fin_rgb)
    dorsal = [
        (x0 + 0.3 * length, cy - half_height * 0.9),
        (x0 + 0.55 * length, cy - half_height * 1.2),
        (x0 + 0.85 * length, cy - half_height * 0.6),
    ]
    draw.polygon(dorsal, fill=fish.fin_rgb)

    body = Image.new("RGBA", fish_layer.size, (0, 0, 0, 0))
    body_draw = ImageDraw.Draw(body)
    # Belly gradient: lower body lighter than the back.
    for row in range(_CANVAS_HEIGHT):
        t = min(1.0, max(0.0, (row - (cy - half_height)) / (2 * half_height)))
        colour = tuple(
            int(a * (1 - t**2) + b * t**2) for a, b in zip(fish.body_rgb, fish.belly_rgb, strict=True)
        )
        body_draw.line([(0, row), (_CANVAS_WIDTH, row)], fill=(*colour, 255))
    _flank_pattern(fish, side, body_draw, x0, x1)
    eye_x, eye_y = x0 + 0.08 * length, cy - half_height * 0.25
    body_draw.ellipse([eye_x - 7, eye_y - 7, eye_x + 7, eye_y + 7], fill=(20, 20, 20, 255))
    body_draw.ellipse([eye_x - 3, eye_y - 4, eye_x + 1, eye_y], fill=(220, 220, 200, 255))
    mask = Image.new("L", fish_layer.size, 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    fish_layer.paste(body, (0, 0), mask)
    if side == "right":
        fish_layer = fish_layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return fish_layer


def crop_subject(flank: Image.Image, side: str, crop: str) -> Image.Image:
    """Cut the body or head crop out of a rendered flank."""
    box = flank.getbbox() or (0, 0, flank.width, flank.height)
    left, top, right, bottom = box
    if crop == "head":
        keep = int((right - left) * _HEAD_FRACTION)
        left, right = (left, left + keep) if side == "left" else (right - keep, right)
    return flank.crop((left, top, right, bottom))


def _background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    top = np.array([20, 70, 90]) + rng.normal(0, 15, 3)
    bottom = np.array([40, 90, 70]) + rng.normal(0, 15, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    gradient = top * (1 - t) + bottom * t
    pixels = np.broadcast_to(gradient, (height, width, 3)).copy()
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        # Rocks and weed, out of focus.
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.05, 0.25) * width
        shade = _clip_rgb(np.array([60, 70, 50]) + rng.normal(0, 25, 3))
        draw.ellipse([cx - radius, cy - radius * 0.6, cx + radius, cy + radius * 0.6], fill=shade)
    return image.filter(ImageFilter.GaussianBlur(6))


def photograph(
    fish: Fish,
    side: str,
    crop: str,
    rng: np.random.Generator,
    *,
    traps: Traps = NO_TRAPS,
    stamp_text: str = "",
) -> Image.Image:
    """One photo of a fish: pose, scale, rotation, light, colour cast, blur, noise, occlusion; with
    `traps`, on the shared board and stamped with `stamp_text` (the traps draw from their own
    generator, so the same seed draws the same fish with or without them)."""
    subject = _posed_subject(fish, side, crop, rng)
    frame_width = int(rng.integers(440, 560)) if crop == "body" else int(rng.integers(280, 340))
    frame_height = int(frame_width * (rng.uniform(0.5, 0.62) if crop == "body" else rng.uniform(0.8, 1.0)))
    fill = rng.uniform(0.78, 0.95)
    scale = min(frame_width * fill / subject.width, frame_height * fill / subject.height)
    subject = subject.resize(
        (max(8, int(subject.width * scale)), max(8, int(subject.height * scale))),
        Image.Resampling.BILINEAR,
    )
    photo = _ground(rng, (frame_width, frame_height), traps)
    offset_x = int((frame_width - subject.width) / 2 + rng.uniform(-0.05, 0.05) * frame_width)
    offset_y = int((frame_height - subject.height) / 2 + rng.uniform(-0.05, 0.05) * frame_height)
    photo.paste(subject, (offset_x, offset_y), subject)
    if rng.random() < 0.3:
        _occlude(photo, rng)
    return _developed(photo, rng, traps, stamp_text)


def _ground(rng: np.random.Generator, size: tuple[int, int], traps: Traps) -> Image.Image:
    """What the fish lies on: water, rocks and weed, or the shared board. The water is drawn either
    way, so that the photo's generator moves on exactly as without traps."""
    ground = _background(rng, size)
    return _on_board(size, _trap_rng(rng)) if traps.board else ground


def _developed(photo: Image.Image, rng: np.random.Generator, traps: Traps, stamp_text: str) -> Image.Image:
    """The photo as the camera leaves it: light, water, blur and noise, then any stamp."""
    photo = _light_and_water(photo, rng)
    if traps.stamp:
        _stamp(photo, stamp_text)
    return photo


def _posed_subject(fish: Fish, side: str, crop: str, rng: np.random.Generator) -> Image.Image:
    """The fish's crop, turned a little and squashed as a fish turned towards or away looks shorter."""
    subject = crop_subject(render_flank(fish, side), side, crop)
    squash = rng.uniform(0.82, 1.0)
    subject = subject.resize((max(8, int(subject.width * squash)), subject.height), Image.Resampling.BILINEAR)
    return subject.rotate(rng.uniform(-14, 14), resample=Image.Resampling.BICUBIC, expand=True)


def _trap_rng(rng: np.random.Generator) -> np.random.Generator:
    """A generator for one photo's traps, seeded from the photo's own without advancing it."""
    return np.random.default_rng(rng.bit_generator.state["state"]["state"] % (2**63))


def _board_image() -> Image.Image:
    """The measuring board: a pale plate with a ruler along its lower edge and a colour card."""
    board_rng = np.random.default_rng(_BOARD_SEED)
    width, height = _BOARD_SIZE
    board = Image.new("RGB", _BOARD_SIZE, (205, 210, 200))
    draw = ImageDraw.Draw(board)
    for _ in range(40):
        # Scuffs and scratches: the same on every photo, as on a real board.
        x, y = board_rng.uniform(0, width), board_rng.uniform(0, height)
        draw.line(
            [(x, y), (x + board_rng.uniform(-60, 60), y + board_rng.uniform(-8, 8))], fill=(170, 175, 165)
        )
    font = ImageFont.load_default()
    ruler_top = int(height * 0.86)
    draw.rectangle([0, ruler_top, width, height], fill=(235, 225, 120))
    for tick in range(0, width, 9):
        length = 22 if tick % 90 == 0 else (14 if tick % 45 == 0 else 8)
        draw.line([(tick, ruler_top), (tick, ruler_top + length)], fill=(20, 20, 20), width=2)
        if tick % 90 == 0:
            draw.text((tick + 3, ruler_top + 22), str(tick // 9), fill=(20, 20, 20), font=font)
    card_left, card_top, patch = int(width * 0.76), int(height * 0.04), 34
    draw.rectangle(
        [card_left - 6, card_top - 6, card_left + 4 * patch + 6, card_top + 3 * patch + 24],
        fill=(250, 250, 250),
    )
    for row in range(3):
        for column in range(4):
            colour = tuple(int(v) for v in board_rng.integers(20, 236, 3))
            x, y = card_left + column * patch, card_top + row * patch
            draw.rectangle([x + 2, y + 2, x + patch - 2, y + patch - 2], fill=colour)
    draw.text((card_left, card_top + 3 * patch + 4), "IMR COLOUR REF 24", fill=(10, 10, 10), font=font)
    return board


@functools.cache
def _cached_board() -> Image.Image:
    return _board_image()


def _on_board(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The board as one photo sees it: the whole plate, a little turned and shifted, at the frame's size."""
    board = _cached_board().rotate(
        rng.uniform(-5, 5), resample=Image.Resampling.BICUBIC, fillcolor=(90, 100, 90)
    )
    margin_x, margin_y = rng.uniform(0, 0.06) * board.width, rng.uniform(0, 0.06) * board.height
    board = board.crop(
        (
            margin_x,
            margin_y,
            board.width - rng.uniform(0, 0.06) * board.width,
            board.height - rng.uniform(0, 0.06) * board.height,
        )
    )
    return board.resize(size, Image.Resampling.BILINEAR)


def _stamp(photo: Image.Image, text: str) -> None:
    """The institute's 60x30 px logo in the lower right corner and the camera's date imprint in the
    lower left: the very same pixels on every photo of a day."""
    draw = ImageDraw.Draw(photo)
    font = ImageFont.load_default()
    width, height = photo.size
    draw.rectangle(
        [width - 66, height - 36, width - 6, height - 6], fill=(245, 245, 245), outline=(200, 30, 30), width=2
    )
    draw.text((width - 60, height - 33), "IMR", fill=(200, 30, 30), font=font)
    draw.text((width - 60, height - 21), "FISH", fill=(30, 30, 160), font=font)
    if text:
        draw.text((8, height - 20), text, fill=(255, 150, 20), font=font)


def photograph_two(
    first: Fish,
    second: Fish,
    side: str,
    rng: np.random.Generator,
    *,
    traps: Traps = NO_TRAPS,
    stamp_text: str = "",
) -> tuple[Image.Image, Image.Image]:
    """Two fish side by side in one frame, and that frame cut twice: a crop around each fish,
    each holding a good part of the other (as crops cut from one video frame or one wide shot)."""
    subjects = [_posed_subject(fish, side, "body", rng) for fish in (first, second)]
    height = int(rng.integers(240, 300))
    scaled = [
        s.resize(
            (max(8, int(s.width * height * 0.8 / s.height)), max(8, int(height * 0.8))),
            Image.Resampling.BILINEAR,
        )
        for s in subjects
    ]
    width = int((scaled[0].width + scaled[1].width) * 0.92)
    frame = _ground(rng, (width, height), traps)
    frame.paste(scaled[0], (0, int(height * 0.1)), scaled[0])
    frame.paste(scaled[1], (width - scaled[1].width, int(height * 0.1)), scaled[1])
    frame = _developed(frame, rng, traps, stamp_text)
    cut = int(width * 0.62)
    return frame.crop((0, 0, cut, height)), frame.crop((width - cut, 0, width, height))


def _occlude(photo: Image.Image, rng: np.random.Generator) -> None:
    """A strand of weed or a rock edge across up to a sixth of the frame."""
    draw = ImageDraw.Draw(photo)
    width, height = photo.size
    edge_x = rng.uniform(0, width)
    band = rng.uniform(0.04, 0.12) * width
    points = [(edge_x + rng.uniform(-band, band), y) for y in np.linspace(0, height, 8)]
    points += [(x + band, y) for x, y in reversed(points)]
    draw.polygon(points, fill=_clip_rgb(np.array([50, 80, 40]) + rng.normal(0, 20, 3)))


def _light_and_water(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(photo, dtype=np.float32)
    height, width = pixels.shape[:2]
    # Uneven light: a brightness ramp across the frame.
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (
        np.cos(angle) * np.linspace(-1, 1, width)[None, :]
        + np.sin(angle) * np.linspace(-1, 1, height)[:, None]
    )
    brightness = rng.uniform(0.75, 1.2) * (1 + rng.uniform(0, 0.25) * ramp)
    contrast = rng.uniform(0.8, 1.15)
    cast = np.array(
        [rng.uniform(0.7, 1.0), rng.uniform(0.92, 1.08), rng.uniform(0.95, 1.2)], dtype=np.float32
    )
    pixels = ((pixels - 128) * contrast + 128) * brightness[:, :, None] * cast
    pixels += rng.normal(0, rng.uniform(0, 6), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    blur = rng.uniform(0, 1.3)
    return image.filter(ImageFilter.GaussianBlur(blur)) if blur > 0.2 else image


def exif_bytes(taken_at: datetime, latitude: float, longitude: float) -> bytes:
    """EXIF with DateTimeOriginal and a GPS position, as a survey camera writes it."""
    exif = Image.Exif()
    exif[0x0110] = "finprint synthetic camera"
    stamp = taken_at.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0132] = stamp
    exif.get_ifd(0x8769)[0x9003] = stamp
    gps = exif.get_ifd(0x8825)
    gps[1] = "N" if latitude >= 0 else "S"
    gps[2] = _dms(abs(latitude))
    gps[3] = "E" if longitude >= 0 else "W"
    gps[4] = _dms(abs(longitude))
    return exif.tobytes()


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return (float(degrees), float(minutes), seconds)


@dataclass(frozen=True)
class GroundTruth:
    """What the archive generator knows about one photo."""

    path: str
    fish_id: str
    side: str
    crop: str
    site: str
    survey_date: str

    @property
    def identity_key(self) -> str:
        """The catalogue entry this photo belongs to: flanks and crops are separate entries."""
        return f"{self.fish_id}:{self.side}:{self.crop}"


GROUND_TRUTH_FILE = "ground_truth.csv"
SYNTHETIC_MARKER = ".finprint-synthetic"


def generate_archive(
    out_dir: Path,
    n_individuals: int = 24,
    n_surveys: int = 6,
    seed: int = 0,
    first_survey: date = date(2024, 6, 3),
    *,
    traps: Traps = NO_TRAPS,
) -> list[GroundTruth]:
    """Write a survey archive (`YYYY-MM-DD_<site>/*.jpg` with EXIF) and its ground truth; with
    `traps`, the same fish on the shared board, stamped, and some of each survey's fish also
    photographed in pairs (two more files each: `IMG_<n>_pair<a|b>_<side>_body.jpg`)."""
    rng = np.random.default_rng([seed, 7])
    pair_rng = np.random.default_rng([seed, 13])
    fishes = [make_fish(f"wrasse{i:03d}", seed * 100_003 + i) for i in range(n_individuals)]
    home_sites = [DEMO_SITES[i % len(DEMO_SITES)] for i in range(n_individuals)]
    truth: list[GroundTruth] = []
    counter = 0
    seen = {fish.fish_id: 0 for fish in fishes}
    for survey in range(n_surveys):
        site = DEMO_SITES[survey % len(DEMO_SITES)]
        day = first_survey + timedelta(days=7 * (survey // len(DEMO_SITES)) + survey % len(DEMO_SITES))
        folder = out_dir / f"{day.isoformat()}_{site.name}"
        folder.mkdir(parents=True, exist_ok=True)
        clock = datetime(day.year, day.month, day.day, 9, 0, 0)
        seen_here: list[Fish] = []
        for fish, home in zip(fishes, home_sites, strict=True):
            # Mostly seen at home; now and then a fish turns up at another site.
            at_home = home == site and rng.random() < 0.75
            # A survey near the end sweeps up fish not yet seen twice, so each has a history.
            catch_up = home == site and seen[fish.fish_id] < 2 and survey >= n_surveys - len(DEMO_SITES)
            visiting = home != site and rng.random() < 0.08
            if not (at_home or visiting or catch_up):
                continue
            seen[fish.fish_id] += 1
            seen_here.append(fish)
            for side in SIDES:
                if rng.random() < 0.25:
                    continue
                crops = ["body"] + (["head"] if rng.random() < 0.5 else [])
                for crop in crops:
                    for _ in range(int(rng.integers(1, 3))):
                        counter += 1
                        clock += timedelta(seconds=int(rng.integers(20, 200)))
                        name = f"IMG_{counter:04d}_{side}_{crop}.jpg"
                        photo = photograph(fish, side, crop, rng, traps=traps, stamp_text=day.isoformat())
                        lat = site.latitude + rng.normal(0, 0.0005)
                        lon = site.longitude + rng.normal(0, 0.0005)
                        photo.save(
                            folder / name,
                            quality=int(rng.integers(85, 94)),
                            exif=exif_bytes(clock, lat, lon),
                        )
                        relative = f"{folder.name}/{name}"
                        truth.append(
                            GroundTruth(relative, fish.fish_id, side, crop, site.name, day.isoformat())
                        )
        pairs = round(traps.two_fish_share * len(seen_here))
        for number in range(pairs if len(seen_here) >= 2 else 0):
            counter += 1
            clock += timedelta(seconds=int(pair_rng.integers(20, 200)))
            first, second = (seen_here[int(i)] for i in pair_rng.choice(len(seen_here), 2, replace=False))
            side = SIDES[number % 2]
            cuts = photograph_two(first, second, side, pair_rng, traps=traps, stamp_text=day.isoformat())
            for letter, fish, cut in zip("ab", (first, second), cuts, strict=True):
                name = f"IMG_{counter:04d}_pair{letter}_{side}_body.jpg"
                cut.save(folder / name, quality=90, exif=exif_bytes(clock, site.latitude, site.longitude))
                truth.append(
                    GroundTruth(
                        f"{folder.name}/{name}", fish.fish_id, side, "body", site.name, day.isoformat()
                    )
                )
    write_ground_truth(out_dir / GROUND_TRUTH_FILE, truth)
    return truth


def write_ground_truth(path: Path, truth: list[GroundTruth]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "fish_id", "side", "crop", "site", "survey_date"])
        for row in truth:
            writer.writerow([row.path, row.fish_id, row.side, row.crop, row.site, row.survey_date])


def read_ground_truth(path: Path) -> list[GroundTruth]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            GroundTruth(r["path"], r["fish_id"], r["side"], r["crop"], r["site"], r["survey_date"])
            for r in csv.DictReader(handle)
        ]


def generate_labelled(out_dir: Path, n_individuals: int, photos_per_view: int, seed: int) -> int:
    """Write a flat labelled set named `<id>_<side>_<crop>_<n>.jpg`, for training; returns the count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Training reads this marker and flags the model card: a model that has only seen drawn
    # fish must say so wherever it is used.
    (out_dir / SYNTHETIC_MARKER).write_text("photos drawn by finprint synthesize\n", encoding="utf-8")
    rng = np.random.default_rng([seed, 11])
    count = 0
    for i in range(n_individuals):
        fish = make_fish(f"syn{seed}x{i:04d}", 1_000_000 + seed * 100_003 + i)
        for side in SIDES:
            for crop in CROPS:
                for n in range(photos_per_view):
                    photo = photograph(fish, side, crop, rng)
                    photo.save(out_dir / f"{fish.fish_id}_{side}_{crop}_{n:02d}.jpg", quality=90)
                    count += 1
    return count
