"""The browser review's speed on a large catalogue: how long a person waits for the next pair.

Usage: python bench/bench_review_web.py [--photos 100000] [--decisions 20] [--think-ms 500] [--browser]
       [--screenshot docs/review-web.png]

The catalogue: `--photos` catalogued photos in all. A drawn survey archive (real photos, real
review questions and look-alikes) is indexed on top of bulk rows that stand for earlier seasons:
photos with embeddings (random unit vectors), individuals of five photos, paths that are never
opened. The review questions and look-alikes are the drawn night's; the look-alikes are ranked
against every catalogued photo, and every query runs over all the rows.

Measured over HTTP against the real server (Werkzeug, threaded, on 127.0.0.1), per decision: the
answer posted and the next page returned (the redirect followed), then both of the next pair's
pictures as the page asks for them (the server scales the next pair's while a pair is shown),
then again with those emptied from the cache (scaled on request), then from the cache. The drawn
photos are small: a 12-megapixel JPEG is scaled on its own to show what a cold picture costs.
With --browser, the same in headless Chromium: a key pressed until the next pair and its pictures
are on screen.
"""

from __future__ import annotations

import argparse
import hashlib
import http.cookiejar
import re
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from benchtable import bench_console, measures_table
from PIL import Image

from catalog.modelcard import read_card
from catalog.night import index
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.store import Batch, IndividualRow, PhotoRow, SightingRow, Store, individual_label
from catalog.synthetic import generate_archive
from catalog.web.app import ReviewServer
from catalog.web.images import Pictures, cache_folder

BULK_PER_INDIVIDUAL = 5
BULK_BATCH = 20_000


def bulk_rows(db: Path, photos: int, seed: int) -> None:
    """Earlier seasons: `photos` photos of individuals of five, one finished run, written in bulk."""
    card = read_card(DEFAULT_MODEL_PATH)
    rng = np.random.default_rng(seed)
    with Store.open(db) as store:
        run_id = store.start_run(card.model_version, card.threshold, "bench", ["/bench/earlier-seasons"])
        for first in range(0, photos, BULK_BATCH):
            batch = Batch()
            for n in range(first, min(first + BULK_BATCH, photos)):
                photo_id = f"{n:064x}"
                number = n // BULK_PER_INDIVIDUAL + 1
                individual = individual_label(number)
                side = ("left", "right")[number % 2]
                batch.photos.append(
                    PhotoRow(photo_id, f"/bench/earlier-seasons/{n}.jpg", 1, 1, 640, 400, None, None, None,
                             None, "Bulk", None, side, "body")
                )  # fmt: skip
                vector = rng.standard_normal(card.embedding.dim).astype(np.float32)
                batch.vectors.append(vector / np.linalg.norm(vector))
                first_photo = n % BULK_PER_INDIVIDUAL == 0
                if first_photo:
                    batch.individuals.append(IndividualRow(individual, number, side, "body", photo_id))
                status = "new" if first_photo else "matched"
                batch.sightings.append(SightingRow(photo_id, individual, status, None, None, None, None))
            store.write_batch(run_id, card.model_version, batch)
        store.finish_run(
            run_id,
            {"files_seen": photos, "photos_new": photos, "photos_failed": 0, "individuals_new": 0},
            {},
        )


def build(work: Path, photos: int) -> Path:
    archive = work / "archive"
    generate_archive(archive, n_individuals=30, n_surveys=4, seed=11)
    drawn = sum(1 for p in archive.rglob("*.jpg"))
    db = work / "big.duckdb"
    bulk_rows(db, max(0, photos - drawn), seed=5)
    index(Settings(db_path=db), [archive])
    return db


class Reviewer:
    """A person's browser, reduced to HTTP: keeps the cookie, posts forms, reads the page."""

    def __init__(self, url: str) -> None:
        self.base = url.split("/?")[0]
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.page = self.opener.open(url, timeout=120).read().decode()

    def post(self, path: str, **form: str) -> None:
        data = urllib.parse.urlencode(form).encode()
        self.page = self.opener.open(self.base + path, data=data, timeout=120).read().decode()

    def field(self, name: str) -> str:
        found = re.search(rf'name="{name}" value="([^"]*)"', self.page)
        return found[1] if found else ""

    def pictures(self) -> list[str]:
        section = self.page.split('<section class="pair"', 1)[-1].split("</section>", 1)[0]
        return re.findall(r'<img src="(/photo/[0-9a-f]+/small)"', section)

    def fetch(self, paths: list[str]) -> None:
        for path in paths:
            self.opener.open(self.base + path, timeout=120).read()


def milliseconds(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(ordered) * 1000:.0f} / {p90 * 1000:.0f} / {ordered[-1] * 1000:.0f}"


def measure_http(server: ReviewServer, db: Path, decisions: int, think_s: float) -> dict[str, str]:
    cache = cache_folder(db)
    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    person = Reviewer(server.url)
    first_page = time.perf_counter() - started
    person.fetch(person.pictures())
    pages, shown_pictures, made, cached = [], [], [], []
    for n in range(decisions):
        key = person.field("key")
        if not key:
            break
        time.sleep(think_s)  # a person looking at the pair
        started = time.perf_counter()
        person.post("/answer", csrf=person.field("csrf"), key=key, answer=("same", "different")[n % 2])
        pages.append(time.perf_counter() - started)
        shown = person.pictures()
        started = time.perf_counter()
        person.fetch(shown)
        shown_pictures.append(time.perf_counter() - started)
        for picture in shown:
            for scaled in cache.rglob(picture.split("/")[2] + ".jpg"):
                scaled.unlink()
        started = time.perf_counter()
        person.fetch(shown)
        made.append(time.perf_counter() - started)
        started = time.perf_counter()
        person.fetch(shown)
        cached.append(time.perf_counter() - started)
    left = re.search(r"<strong>(\d+)</strong> pair\(s\) left", person.page)
    return {
        "first page (look-alikes ranked), ms": f"{first_page * 1000:.0f}",
        "decisions timed": str(len(pages)),
        "pairs left after them": left[1] if left else "?",
        "answer -> next page, ms (median / p90 / max)": milliseconds(pages),
        "then its 2 pictures (scaled while the last pair was shown), ms": milliseconds(shown_pictures),
        "its 2 pictures scaled on request (cache emptied), ms": milliseconds(made),
        "its 2 pictures from the cache, ms": milliseconds(cached),
    }


def measure_large_photo(work: Path) -> dict[str, str]:
    """One 12-megapixel camera JPEG scaled for the page: what a cold picture costs on real photos
    (the drawn survey's photos are small)."""
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, (3000 // 8, 4000 // 8, 3), dtype=np.uint8)
    photo = work / "large" / "IMG_large.jpg"
    photo.parent.mkdir()
    Image.fromarray(noise).resize((4000, 3000), Image.Resampling.BICUBIC).save(photo, quality=92)
    photo_id = hashlib.sha256(photo.read_bytes()).hexdigest()
    times = []
    for _ in range(5):
        pictures = Pictures(work / "large.duckdb")
        shutil.rmtree(pictures.folder, ignore_errors=True)
        started = time.perf_counter()
        pictures.rendition([photo], photo_id, "small")
        times.append(time.perf_counter() - started)
    size_mb = photo.stat().st_size / 1e6
    return {f"one 12 MP photo ({size_mb:.1f} MB) scaled, ms": milliseconds(times)}


def chromium(profile: Path, width: int = 1400, height: int = 1000) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def measure_browser(server: ReviewServer, decisions: int, think_s: float, profile: Path) -> dict[str, str]:
    """Key pressed in Chromium until the next pair's page and pictures are loaded: the browser's
    own navigation timing (the form's submission to the load event, redirect included), and the
    wall time seen from here (WebDriver's round trips included)."""
    from selenium.webdriver.common.by import By

    browser = chromium(profile)
    ready = (
        "const pair = document.querySelector('section.pair');"
        "return document.readyState === 'complete' && pair ? pair.dataset.pair : null;"
    )
    navigation = (
        "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"
    )
    try:
        browser.get(server.url)
        loaded, seen = [], []
        for n in range(decisions):
            before = browser.execute_script(ready)
            if before is None:
                break
            time.sleep(think_s)
            started = time.perf_counter()
            browser.find_element(By.TAG_NAME, "body").send_keys("yn"[n % 2])
            while browser.execute_script(ready) in (None, before):
                time.sleep(0.005)
            seen.append(time.perf_counter() - started)
            loaded.append(browser.execute_script(navigation) / 1000)
    finally:
        browser.quit()
    return {
        "key -> next pair loaded, browser's timing, ms (median / p90 / max)": milliseconds(loaded),
        "key -> next pair loaded, seen through WebDriver, ms": milliseconds(seen),
    }


def screenshot(server: ReviewServer, out: Path, profile: Path) -> None:
    browser = chromium(profile, 1280, 1000)
    try:
        browser.get(server.url)
        shot = out.with_suffix(".full.png")
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    # 128 colours: a quarter of the bytes, and the photos still read (the repository keeps it).
    with Image.open(shot) as image:
        image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    shot.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=20)
    parser.add_argument("--browser", action="store_true", help="also time keys in headless Chromium")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=500,
        help="a person's look at each pair before the key (a quick one)",
    )
    parser.add_argument("--screenshot", type=Path, help="save the first page as PNG (docs/review-web.png)")
    args = parser.parse_args()
    card = read_card(DEFAULT_MODEL_PATH)
    with tempfile.TemporaryDirectory(prefix="bench-review-web-") as folder:
        work = Path(folder)
        started = time.perf_counter()
        db = build(work, args.photos)
        built = time.perf_counter() - started
        if args.screenshot:  # the first page, from a server of its own: the one timed starts cold
            shown = ReviewServer(db, card)
            threading.Thread(target=shown.serve_forever, daemon=True).start()
            screenshot(shown, args.screenshot, work / "shot-profile")
            shown.shutdown()
        server = ReviewServer(db, card)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with Store.open(db, read_only=True) as store:
                catalogued = store.read_only_sql("SELECT count(*) FROM photos").rows[0][0]
            figures = {"catalogued photos": f"{catalogued:,}", "catalogue built in, s": f"{built:.0f}"}
            figures["a person's look at each pair, ms"] = f"{args.think_ms:.0f}"
            figures |= measure_http(server, db, args.decisions, args.think_ms / 1000)
            figures |= measure_large_photo(work)
            if args.browser:
                figures |= measure_browser(server, args.decisions, args.think_ms / 1000, work / "profile")
        finally:
            server.shutdown()
    bench_console().print(measures_table("The browser review: waiting for the next pair", {"": figures}))


if __name__ == "__main__":
    main()
