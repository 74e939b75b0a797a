"""The browser review: its keys land the command line's own decisions, and it serves nothing else."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import copy_catalogue, run_finprint

flask = pytest.importorskip("flask", reason="the browser review needs the web extra (flask)")

from catalog.modelcard import read_card  # noqa: E402
from catalog.settings import DEFAULT_MODEL_PATH  # noqa: E402
from catalog.store import Store  # noqa: E402
from catalog.web.app import COOKIE, ReviewServer, create_app  # noqa: E402
from catalog.web.pairs import PairKind, Queue  # noqa: E402

CARD = read_card(DEFAULT_MODEL_PATH)


def _client(db: Path) -> tuple[Any, Any]:
    """A browser's stand-in that holds the page's key, and the app's session."""
    app = create_app(db, CARD)
    session = app.extensions["finprint"]
    client = app.test_client()
    assert client.get(f"/?token={session.access_token}").status_code == 302
    return client, session


def _post(client: Any, session: Any, url: str, **form: str) -> Any:
    return client.post(url, data={"csrf": session.csrf_token, **form}, follow_redirects=True)


def _open_keys(db: Path) -> tuple[list[str], list[str]]:
    """The open pairs' keys, review questions and look-alikes apart."""
    with Store.open(db, read_only=True) as store:
        pairs = Queue(CARD).open_pairs(store)
    return (
        [p.key for p in pairs if p.kind is PairKind.REVIEW],
        [p.key for p in pairs if p.kind is PairKind.LOOKALIKE],
    )


def _state(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a decision can write: decisions (all but their time), sightings, individuals."""
    with Store.open(db, read_only=True) as store:
        return {
            "decisions": store.read_only_sql(
                "SELECT decision_id, action, individual_id, other_individual_id, photo_ids, name, reason, "
                "previous, decided_by, undone_at IS NULL FROM decisions ORDER BY decision_id"
            ).rows,
            "sightings": store.read_only_sql("SELECT * FROM sightings ORDER BY photo_id").rows,
            "individuals": store.read_only_sql("SELECT * FROM individuals ORDER BY individual_id").rows,
        }


@pytest.fixture
def reviewed(indexed_copy: Path) -> Path:
    reviews, alikes = _open_keys(indexed_copy)
    assert len(reviews) >= 3 and len(alikes) >= 2, "the drawn catalogue must ask both kinds of question"
    return indexed_copy


def test_a_page_needs_its_key_and_keeps_it_out_of_the_address(reviewed: Path) -> None:
    app = create_app(reviewed, CARD)
    client = app.test_client()
    refused = client.get("/")
    assert refused.status_code == 403 and b"needs its key" in refused.data
    assert client.get("/?token=not-the-key").status_code == 403
    token = app.extensions["finprint"].access_token
    welcomed = client.get(f"/?token={token}")
    assert welcomed.status_code == 302 and welcomed.location == "/"
    assert f"{COOKIE}={token}" in welcomed.headers["Set-Cookie"]
    assert (
        "HttpOnly" in welcomed.headers["Set-Cookie"] and "SameSite=Strict" in welcomed.headers["Set-Cookie"]
    )
    assert client.get("/").status_code == 200


def test_a_server_bound_beyond_localhost_refuses_requests_without_the_key(reviewed: Path) -> None:
    server = ReviewServer(reviewed, CARD, host="0.0.0.0", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = server.url.split("?")[0].replace("0.0.0.0", "127.0.0.1")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base, timeout=10)
        assert refused.value.code == 403
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        opened = browser.open(server.url.replace("0.0.0.0", "127.0.0.1"), timeout=10)
        assert opened.status == 200 and b"pair(s) left" in opened.read()
    finally:
        server.shutdown()


def test_same_different_skip_and_undo_land_exactly_as_the_command_line_s(
    reviewed: Path, tmp_path: Path
) -> None:
    by_cli = copy_catalogue(reviewed, tmp_path / "cli")
    reviews, alikes = _open_keys(reviewed)
    client, session = _client(reviewed)
    first, second, third = (key.split(":")[1] for key in reviews[:3])
    alike = alikes[0].split(":")[1:]

    page = client.get("/").get_data(as_text=True)
    assert f'data-pair="{reviews[0]}"' in page, "the page shows the first review question first"
    _post(client, session, "/answer", key=reviews[0], answer="same", reason="same pattern")
    page = _post(client, session, "/answer", key=reviews[1], answer="different", reason="fin shape").get_data(
        as_text=True
    )
    assert f'data-pair="{reviews[2]}"' in page, "the next question follows an answer"
    page = _post(client, session, "/answer", key=reviews[2], answer="skip").get_data(as_text=True)
    assert f'data-pair="{reviews[2]}"' not in page, "a skipped pair waits behind the others"
    _post(client, session, "/answer", key=alikes[0], answer="same", reason="same pattern")
    _post(client, session, "/undo", decision=str(session.made[-1]))
    _post(client, session, "/answer", key=alikes[0], answer="different", reason="fin shape")

    for args in (
        ["confirm", first, "--reason", "same pattern"],
        ["reject", second, "--reason", "fin shape"],
        ["merge", *alike, "--reason", "same pattern"],
        ["undo", "3"],
        ["different", *alike, "--reason", "fin shape"],
    ):
        assert run_finprint(*args, "--db", str(by_cli)).returncode == 0, args
    assert _state(reviewed) == _state(by_cli)
    assert third not in {row[4][0] for row in _state(reviewed)["decisions"] if row[4]}
    listed = run_finprint("lookalikes", alike[0], "--format", "csv", "--db", str(reviewed)).stdout
    assert alike[1] not in listed, "a pair ruled different is no longer offered as look-alikes"


def test_a_second_page_answering_a_decided_pair_is_told_so_and_records_nothing(reviewed: Path) -> None:
    reviews, _ = _open_keys(reviewed)
    first, first_session = _client(reviewed)
    second, _ = _client(reviewed)
    second_session = second.application.extensions["finprint"]
    _post(first, first_session, "/answer", key=reviews[0], answer="same")
    told = _post(second, second_session, "/answer", key=reviews[0], answer="different").get_data(as_text=True)
    assert "already decided" in told
    again = _post(first, first_session, "/answer", key=reviews[0], answer="same").get_data(as_text=True)
    assert "already decided" in again, "a double click records one decision"
    assert len(_state(reviewed)["decisions"]) == 1
    undo = str(first_session.made[-1])
    _post(first, first_session, "/undo", decision=undo)
    twice = _post(first, first_session, "/undo", decision=undo).get_data(as_text=True)
    assert "already undone" in twice
    assert [row[-1] for row in _state(reviewed)["decisions"]] == [False]


def test_a_post_without_the_form_key_changes_nothing(reviewed: Path) -> None:
    reviews, _ = _open_keys(reviewed)
    client, _ = _client(reviewed)
    assert client.post("/answer", data={"key": reviews[0], "answer": "same"}).status_code == 403
    assert client.post("/answer", data={"key": reviews[0], "answer": "same", "csrf": "x"}).status_code == 403
    assert client.get("/answer").status_code == 405, "a decision is never made by GET"
    assert _state(reviewed)["decisions"] == []


def test_only_this_catalogue_s_photos_are_served(reviewed: Path, tmp_path: Path) -> None:
    client, _ = _client(reviewed)
    with Store.open(reviewed, read_only=True) as store:
        photo_id, path = store.read_only_sql(
            "SELECT photo_id, min(path) FROM photo_paths GROUP BY photo_id ORDER BY 1 LIMIT 1"
        ).rows[0]
    for refused in (
        "/photo/../../../../etc/passwd",
        "/photo/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd/small",
        "/photo/%2Fetc%2Fpasswd/small",
        f"/photo/{path}/small",
        f"/photo/{'0' * 64}/small",
        f"/photo/{photo_id}/original",
        f"/photo/{photo_id.upper()}/small",
        "/static/../../store/catalogue.py",
    ):
        assert client.get(refused).status_code == 404, refused
    # The catalogued file replaced by a symlink to the very same bytes outside the archive.
    outside = tmp_path / "outside.jpg"
    shutil.copy2(path, outside)
    original, times = Path(path).read_bytes(), Path(path).stat()
    Path(path).unlink()
    Path(path).symlink_to(outside)
    assert client.get(f"/photo/{photo_id}/small").status_code == 404, "a symlink out of the archive"
    # Inside the archive, but other bytes than the photo catalogued under that id.
    Path(path).unlink()
    Path(path).write_bytes(original[:-100] + bytes(100))
    assert client.get(f"/photo/{photo_id}/small").status_code == 404, "a file edited since"
    Path(path).write_bytes(original)
    # The session's drawn archive, as other tests find it: same bytes, same time.
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    with client.get(f"/photo/{photo_id}/small") as served:
        assert (
            served.status_code == 200 and served.mimetype == "image/jpeg" and served.data[:2] == b"\xff\xd8"
        )
    cached = reviewed.with_name(reviewed.name + ".thumbnails")
    assert any(cached.rglob(f"{photo_id}.jpg")), "scaled once, cached beside the catalogue"


def test_every_name_is_escaped_and_no_inline_script_may_run(reviewed: Path) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    assert run_finprint("rename", "FP-000001", hostile, "--db", str(reviewed)).returncode == 0
    client, _ = _client(reviewed)
    for url in ("/individual/FP-000001", "/"):
        response = client.get(url, follow_redirects=True)
        page = response.get_data(as_text=True)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
        assert '<script>alert("x")' not in page and "<img src=x" not in page
        assert all(tag.startswith(' src="/static/') for tag in page.split("<script")[1:])
    assert "&lt;script&gt;alert(&#34;x&#34;)" in client.get("/individual/FP-000001").get_data(as_text=True)
    found = client.get("/individual?q=" + urllib.request.quote(hostile))
    assert found.status_code == 302 and found.location.endswith("/individual/FP-000001")


def test_an_entry_page_links_renames_and_splits_through_the_decisions(reviewed: Path) -> None:
    client, session = _client(reviewed)
    with Store.open(reviewed, read_only=True) as store:
        individual, photos = store.read_only_sql(
            "SELECT individual_id, list(photo_id ORDER BY photo_id) FROM sightings GROUP BY 1 "
            "HAVING count(*) > 2 ORDER BY 1 LIMIT 1"
        ).rows[0]
    page = client.get(f"/individual/{individual}").get_data(as_text=True)
    assert all(photo in page for photo in photos) and "Looks most like" in page
    _post(client, session, f"/individual/{individual}/rename", name="PIT 42")
    _post(client, session, f"/individual/{individual}/split", photo=photos[0])
    refused = _post(client, session, f"/individual/{individual}/link", other=individual).get_data(
        as_text=True
    )
    assert "cannot link an individual with itself" in refused
    actions = [row[1] for row in _state(reviewed)["decisions"]]
    assert actions == ["rename", "split"]
    assert client.get("/individual?q=PIT+42").location.endswith(f"/individual/{individual}")


def test_while_a_night_holds_the_catalogue_the_page_waits_and_decides_nothing(reviewed: Path) -> None:
    reviews, _ = _open_keys(reviewed)
    client, session = _client(reviewed)
    night = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', "
         "flush=True); time.sleep(60)", str(reviewed)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert night.stdout is not None and night.stdout.readline().strip() == "held"
        waiting = client.get("/")
        assert waiting.status_code == 503 and b"A night is running" in waiting.data
        assert b'http-equiv="refresh"' in waiting.data
        posted = client.post(
            "/answer", data={"csrf": session.csrf_token, "key": reviews[0], "answer": "same"}
        )
        assert posted.status_code == 503
    finally:
        night.kill()
        night.communicate()
    assert _state(reviewed)["decisions"] == []
    assert client.get("/").status_code == 200


# -- in a real browser ----------------------------------------------------------------------------

CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def server(reviewed: Path) -> Iterator[ReviewServer]:
    serving = ReviewServer(reviewed, CARD, port=0)
    thread = threading.Thread(target=serving.serve_forever, daemon=True)
    thread.start()
    yield serving
    serving.shutdown()


def _browser(profile: Path, javascript: bool = True) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
def test_keys_in_a_real_browser_decide_skip_and_undo(
    server: ReviewServer, reviewed: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser(tmp_path / "profile")
    try:
        browser.get(server.url)

        def shown() -> str | None:
            # Read in one script: an element found before the next page loads would be stale.
            pair: str | None = browser.execute_script(
                "const pair = document.querySelector('section.pair');"
                "return document.readyState === 'complete' && pair ? pair.dataset.pair : null;"
            )
            return pair

        def press(key: str, before: str | None) -> str | None:
            browser.find_element(By.TAG_NAME, "body").send_keys(key)
            WebDriverWait(browser, 20).until(lambda _: shown() not in (None, before))
            return shown()

        first = shown()
        images = browser.find_elements(By.CSS_SELECTOR, "section.pair img")
        assert images and all(
            browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images
        )
        second = press("y", first)
        third = press("n", second)
        after_skip = press("s", third)
        assert first and second and third and after_skip != third
        assert browser.current_url.endswith(":" + server.url.split(":")[2].split("/")[0] + "/"), (
            "the address bar reads / after an answer: a reload shows the queue, it does not post again"
        )
        decided = _state(reviewed)["decisions"]
        assert [(row[1], row[4][0]) for row in decided] == [
            ("confirm", first.split(":")[1]),
            ("reject", second.split(":")[1]),
        ]
        assert "2" in browser.find_element(By.CSS_SELECTOR, ".progress").text.split("·")[1]
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        WebDriverWait(browser, 20).until(lambda _: "Undid decision 2" in browser.page_source)
        assert [row[-1] for row in _state(reviewed)["decisions"]] == [True, False]
        # A stale page (opened before the undo, say) answering a pair already decided is told so.
        browser.execute_script("document.querySelector('input[name=key]').value = arguments[0]", first)
        browser.find_element(By.TAG_NAME, "body").send_keys("n")
        WebDriverWait(browser, 20).until(lambda _: "already decided" in browser.page_source)
        assert len(_state(reviewed)["decisions"]) == 2
    finally:
        browser.quit()

    # With JavaScript off the page still reads: the pair, its photos and its buttons.
    reader = _browser(tmp_path / "reader", javascript=False)
    try:
        reader.get(server.url)
        assert reader.find_element(By.CSS_SELECTOR, "section.pair h1, h1.question").text
        images = reader.find_elements(By.CSS_SELECTOR, "section.pair img")
        assert images and all(
            reader.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images
        )
        shown = reader.find_element(By.CSS_SELECTOR, "section.pair").get_attribute("data-pair")
        reader.find_element(By.TAG_NAME, "body").send_keys("y")
        time.sleep(1)
        assert reader.find_element(By.CSS_SELECTOR, "section.pair").get_attribute("data-pair") == shown
        assert len(_state(reviewed)["decisions"]) == 2, "JavaScript really is off: keys do nothing"
    finally:
        reader.quit()


@pytest.mark.slow
def test_review_web_prints_an_address_that_opens_and_stops_on_ctrl_c(reviewed: Path) -> None:
    command = [sys.executable, "-m", "catalog", "review", "--web", "--port", "0", "--db", str(reviewed)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("Review ") and "browser" in lines[0]
        url = lines[1].strip()
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        assert b"pair(s) left" in browser.open(url, timeout=30).read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url.split("?")[0], timeout=30)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            out, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # Never leave a server behind a failed test: it would hold a port and the catalogue.
            server.kill()
            server.communicate()
            raise
    assert server.returncode == 0 and "Stopped" in out, err


def test_without_the_web_extra_review_web_says_what_to_install(
    reviewed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "flask" or m.startswith(("flask.", "catalog.web"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "flask", None)  # what `import flask` meets without the extra
    result = run_finprint("review", "--web", "--db", str(reviewed))
    assert result.returncode == 1 and "pip install 'finprint[web]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_undo_returns_only_to_a_page_of_its_own(reviewed: Path) -> None:
    reviews, _ = _open_keys(reviewed)
    client, session = _client(reviewed)
    for back in (
        "//elsewhere.example",
        "/\\elsewhere.example",
        "https://elsewhere.example/",
        "/individual/FP-000001",
    ):
        _post(client, session, "/answer", key=reviews[0], answer="same")
        went = client.post(
            "/undo", data={"csrf": session.csrf_token, "decision": str(session.made[-1]), "back": back}
        )
        assert went.status_code == 302
        assert went.location == (back if back.startswith("/individual/") else "/"), back
        reviews, _ = _open_keys(reviewed)
