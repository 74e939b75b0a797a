"""The browser review's pages and the decisions they post, each through the command line's own functions."""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from catalog import decisions
from catalog.errors import CatalogueBusy, FinprintError
from catalog.lookalikes import lookalikes, nearest_photos
from catalog.store import Store
from catalog.web.images import NotServed, catalogued_files
from catalog.web.pairs import Answer, Pair, PairDecided, answer, older_first, with_photos
from catalog.web.session import Session

# Sightings of an entry listed beside a pair; its own page lists them all.
SIGHTINGS_BESIDE_PAIR = 6
# Look-alikes shown on an entry's page.
LOOKALIKES_ON_PAGE = 3
DEFAULT_REASON = "browser review"


def current_session() -> Session:
    """The sitting this request belongs to."""
    session: Session = current_app.extensions["finprint"]
    return session


def _reason() -> str:
    return request.form.get("reason", "").strip() or DEFAULT_REASON


def common() -> dict[str, Any]:
    """What every page's header needs: the form key and the decision the undo key takes back."""
    session = current_session()
    return {"csrf": session.csrf_token, "undo_decision": session.made[-1] if session.made else None}


def night_running(error: CatalogueBusy) -> ResponseReturnValue:
    # Looked at again by GET: a posted decision is not repeated, the person makes it again.
    again = request.full_path if request.method == "GET" else url_for("queue_page")
    return render_template("busy.html", message=str(error), again=again), 503


def queue_page() -> ResponseReturnValue:
    with current_session().catalogue() as store:
        return _queue(store)


def answer_pair() -> ResponseReturnValue:
    """Record the answer and show the next pair in the same response: one request and one opening
    of the catalogue per key (the page's script puts "/" back in the address bar; a page posted
    again is told the pair is decided)."""
    session = current_session()
    key = request.form.get("key", "")
    if request.form.get("answer") == "skip":
        session.queue.skip(key)
        return queue_page()
    try:
        said = Answer(request.form.get("answer", ""))
    except ValueError:
        abort(400)
    with session.catalogue(write=True) as store:
        try:
            decision_id = answer(store, session.queue, key, said, _reason())
        except PairDecided as decided:
            flash(str(decided), "warning")
            return _queue(store)
        except FinprintError as refused:
            flash(str(refused), "error")
            return _queue(store)
        session.made.append(decision_id)
        flash(f"Recorded as decision {decision_id} ({said.value}). Undo: u.", "done")
        return _queue(store)


def _queue(store: Store) -> ResponseReturnValue:
    """The page of the first open pair, with the progress of the sitting."""
    session = current_session()
    pairs = session.queue.open_pairs(store)
    pair = with_photos(store, session.card, pairs[0]) if pairs else None
    entries = _entries(store, pair) if pair else {}
    # The next pair's pictures are scaled while the person looks at this one.
    upcoming = _pictures_to_come(store, session, pairs[1:2])
    if upcoming:
        threading.Thread(target=_prepare, args=(session, upcoming), daemon=True).start()
    return render_template(
        "queue.html",
        pair=pair,
        left=len(pairs),
        skipped=len(session.queue.skipped),
        decided=len(session.made),
        entries=entries,
        beside=SIGHTINGS_BESIDE_PAIR,
    )


def undo_last() -> ResponseReturnValue:
    session = current_session()
    if not session.made or request.form.get("decision", "") != str(session.made[-1]):
        flash("That decision was already undone (a second click?): nothing more was undone.", "warning")
        return redirect(_back())
    with session.catalogue(write=True) as store:
        try:
            action = decisions.undo(store, session.made[-1])
        except FinprintError as refused:
            flash(str(refused), "error")
            return redirect(_back())
    flash(f"Undid decision {session.made.pop()} ({action}).", "done")
    return redirect(_back())


def find_individual() -> ResponseReturnValue:
    asked = request.args.get("q", "").strip()
    with current_session().catalogue() as store:
        found = store.resolve_individual(asked) if asked else None
    if found is None:
        flash(f"No individual is called {asked!r}: give an FP- id or a name.", "error")
        return redirect(url_for("queue_page"))
    return redirect(url_for("individual_page", individual_id=found))


def individual_page(individual_id: str) -> ResponseReturnValue:
    session = current_session()
    with session.catalogue() as store:
        resolved = store.resolve_individual(individual_id)
        if resolved is None:
            abort(404)
        if resolved != individual_id:
            return redirect(url_for("individual_page", individual_id=resolved))
        history = store.query("entry_photos", individual_id=resolved).records()
        name = store.individual_fields([resolved])[resolved]["name"]
        alike = _lookalikes(store, session, resolved)
    return render_template(
        "individual.html",
        individual_id=resolved,
        name=name,
        history=history,
        own=[row for row in history if row["individual_id"] == resolved],
        alike=alike,
    )


def decide_on_individual(individual_id: str, action: str) -> ResponseReturnValue:
    session = current_session()
    with session.catalogue(write=True) as store:
        try:
            decision_id = _decide(store, action, individual_id, request.form)
        except FinprintError as refused:
            flash(str(refused), "error")
            return redirect(url_for("individual_page", individual_id=individual_id))
        where = store.resolve_individual(individual_id) or individual_id
    session.made.append(decision_id)
    flash(f"Recorded as decision {decision_id} ({action}). Undo: u.", "done")
    return redirect(url_for("individual_page", individual_id=where))


def photo(photo_id: str, size: str) -> ResponseReturnValue:
    session = current_session()
    try:
        path = session.pictures.cached(photo_id, size)
        if path is None:
            with session.catalogue() as store:
                files = catalogued_files(store, photo_id)
            path = session.pictures.rendition(files, photo_id, size)
    except NotServed:
        abort(404)
    return _jpeg(path)


def lines(photo_id: str) -> ResponseReturnValue:
    session = current_session()
    try:
        with session.catalogue() as store:
            path = session.pictures.keypoint_lines(store, photo_id)
    except NotServed:
        abort(404)
    return _jpeg(path)


# (rule, view, methods): a decision is only ever made by POST.
ROUTES = (
    ("/", queue_page, ["GET"]),
    ("/answer", answer_pair, ["POST"]),
    ("/undo", undo_last, ["POST"]),
    ("/individual", find_individual, ["GET"]),
    ("/individual/<individual_id>", individual_page, ["GET"]),
    ("/individual/<individual_id>/<action>", decide_on_individual, ["POST"]),
    ("/photo/<photo_id>/<size>", photo, ["GET"]),
    ("/lines/<photo_id>", lines, ["GET"]),
)


def _pictures_to_come(store: Store, session: Session, pairs: list[Pair]) -> list[tuple[str, list[Path]]]:
    """The photos of these pairs with the files they may be read from."""
    wanted = []
    for pair in pairs:
        shown = with_photos(store, session.card, pair)
        for photo_id in (shown.photo_id, shown.other_photo_id):
            if photo_id and session.pictures.cached(photo_id, "small") is None:
                wanted.append((photo_id, catalogued_files(store, photo_id)))
    return wanted


def _prepare(session: Session, pictures: list[tuple[str, list[Path]]]) -> None:
    for photo_id, files in pictures:
        with contextlib.suppress(NotServed):
            session.pictures.rendition(files, photo_id, "small")


def _jpeg(path: Any) -> ResponseReturnValue:
    response = send_file(path, mimetype="image/jpeg", max_age=3600)
    # A photo's picture never changes (its id is its content), but it is private: no shared cache.
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


# The pages an undo may return to: the queue, or an entry's page. Nothing else, so that a forged
# form cannot send the browser away ("//elsewhere", "/\\elsewhere" read as another site).
_PAGES_TO_RETURN_TO = re.compile(r"/(individual/FP-\d+)?")


def _back() -> str:
    """The page a form was posted from, when it is one of ours; the queue otherwise."""
    came_from = request.form.get("back", "")
    return came_from if _PAGES_TO_RETURN_TO.fullmatch(came_from) else url_for("queue_page")


def _entries(store: Store, pair: Pair) -> dict[str, dict[str, Any]]:
    """Each entry of a pair: its sightings (flank links followed) and how many photos it holds."""
    entries = {}
    # A review question about the entry the photo joined names it twice: asked once.
    for entry in dict.fromkeys((pair.individual_id, pair.other_individual_id)):
        if entry:
            history = store.query("entry_photos", individual_id=entry).records()
            own = sum(1 for row in history if row["individual_id"] == entry)
            entries[entry] = {"photos": own, "history": history}
    return entries


def _lookalikes(store: Store, session: Session, individual_id: str) -> list[Any]:
    """An entry's first look-alikes, each with the two nearest photos; none without the model."""
    if session.card is None:
        return []
    try:
        found = lookalikes(store, session.card, [individual_id], LOOKALIKES_ON_PAGE)
    except FinprintError:
        return []
    return [(f, nearest_photos(store, session.card, individual_id, f.candidate_id)) for f in found]


def _decide(store: Store, action: str, individual_id: str, form: MultiDict[str, str]) -> int:
    """One of an entry page's decisions, through the command line's own functions."""
    other = form.get("other", "").strip()
    if action == "rename":
        return decisions.rename(store, individual_id, form.get("name", "").strip(), _reason())
    if action == "link":
        return decisions.link(store, individual_id, other, _reason())
    if action == "split":
        return decisions.split(store, individual_id, [form.get("photo", "")], _reason())
    if action == "same":
        keep, fold = older_first(individual_id, store.resolve_individual(other) or other)
        return decisions.merge(store, keep, fold, _reason())
    if action == "different":
        return decisions.different(store, individual_id, other, _reason())
    raise FinprintError(f"{action}: not a decision this page makes.")
