"""Every page a user reaches, on a laptop and a tablet, checked for what a user would meet:
no sideways scrolling and no control cut off or covered; Tab reaching every control a
mouse can click, with a visible focus; text and form-control borders at WCAG AA
contrast; one h1, a title, landmarks, `lang` and a name on every control. The checks are
computed in the page itself (no axe-core); no file a page asks for, its icon included, is
missing (the admin's and the API's pages too). A screenshot per page and size is saved
under test-artifacts/.

The data (two users, labs, a failed deployment with steps, a host, a read-only share)
is made here and removed afterwards, so the other browser tests still see an empty site.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect

from tests.browser.conftest import ARTIFACTS, PASSWORD

Shell = Callable[[str], None]

EMPTY_USER = "a11y-newcomer"
USER = "a11y-student"
READER = "a11y-reader"
ADMIN = "a11y-admin"
HOST = "a11y-host"
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}
TABLET_LANDSCAPE = {"width": 1024, "height": 768}
VIEWPORTS = {"laptop": LAPTOP, "tablet": TABLET, "tablet-landscape": TABLET_LANDSCAPE}


@dataclass(frozen=True)
class Site:
    lab: int  # USER's lab, with a failed deployment and its steps
    shared: int  # USER's lab shared read-only with READER
    running: int  # USER's lab with a deployment recorded as running (no agent answers)


@pytest.fixture(scope="module")
def site(live_server_url: str, manage_shell: Shell, server_data: Path) -> Iterator[Site]:
    out = server_data / "a11y-site.txt"
    manage_shell(
        "from django.contrib.auth.models import Group, User; "
        "from labmgr.hosts.models import Host; "
        "from labmgr.deployments.models import Deployment, DeploymentStep; "
        "from labmgr.web import examples, services; "
        f"[User.objects.create_user(n, password={PASSWORD!r}) "
        f"for n in ({EMPTY_USER!r}, {USER!r}, {READER!r})]; "
        f"User.objects.create_superuser({ADMIN!r}, password={PASSWORD!r}); "
        f"me = User.objects.get(username={USER!r}); "
        f"host = Host.objects.create(name={HOST!r}, slug={HOST!r}, status='online', "
        "cpus=4, memory=8 * 2**30, pids=1000); "
        "lab = services.example_copy(user=me, example=examples.example_get('two-nodes')); "
        "shared = services.example_copy(user=me, example=examples.example_get('two-bridges')); "
        "readers = Group.objects.create(name='a11y-readers'); "
        f"readers.user_set.add(User.objects.get(username={READER!r})); "
        "shared.shared_with.add(readers); "
        "d = Deployment.objects.create(lab=lab, owner=me, status='failed', host=host); "
        "[DeploymentStep.objects.create(deployment=d, seq=i, name=n, status=s, target=t, "
        "message=m, seconds=0.01) for i, (n, s, t, m) in enumerate(["
        "('create netns', 'succeeded', 'lm1-n0', ''), "
        "('add bridge', 'failed', 'lm1-b0', 'RTNETLINK answers: Operation not permitted')])]; "
        "running = services.example_copy(user=me, example=examples.example_get('namespaces')); "
        "Deployment.objects.create(lab=running, owner=me, status='running', host=host); "
        # A booking of mine later today, so the week and the dashboard show one.
        "from datetime import timedelta; from labmgr.reservations import clock; "
        "from labmgr.reservations.services import Share, reservation_book; "
        "start = clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1); "
        "reservation_book(actor=me, host=host, start=start, end=start + timedelta(hours=1), "
        "share=Share(whole_host=True)); "
        f"open({str(out)!r}, 'w').write(f'{{lab.pk}} {{shared.pk}} {{running.pk}}')"
    )
    lab, shared, running = (int(pk) for pk in out.read_text().split())
    yield Site(lab=lab, shared=shared, running=running)
    manage_shell(
        "from django.contrib.auth.models import Group, User; "
        "from labmgr.reservations.models import Reservation; "
        "from labmgr.deployments.models import Deployment; "
        "from labmgr.hosts.models import Host; "
        f"Reservation.objects.filter(host__name={HOST!r}).delete(); "
        f"Deployment.objects.filter(host__name={HOST!r}).delete(); "
        f"Host.objects.filter(name={HOST!r}).delete(); "
        f"User.objects.filter(username__in=({EMPTY_USER!r}, {USER!r}, {READER!r}, {ADMIN!r}))"
        ".delete(); "
        "Group.objects.filter(name='a11y-readers').delete()"
    )


@dataclass(frozen=True)
class Visit:
    user: str | None  # None: not logged in
    path: Callable[[Site], str]
    status: int = 200
    logged_in: bool = True  # whether the page shows the main navigation
    then: Callable[[Page], None] | None = None  # what the user does before the checks


def _break_a_field(page: Page) -> None:
    node = page.locator("fieldset", has=page.get_by_text("Node alice", exact=True))
    node.get_by_label("Memory").fill("12Q")
    expect(node.locator(".field-error")).to_contain_text('"12Q" is not a size')


def _pick_a_node(page: Page) -> None:
    page.get_by_role("button", name="alice", exact=True).click()
    expect(page.locator("#details")).to_contain_text("alice")


def _open_examples(page: Page) -> None:
    for summary in page.locator(".gallery details summary").all():
        summary.click()


PAGES: dict[str, Visit] = {
    "login": Visit(None, lambda s: "/login/", logged_in=False),
    "dashboard-empty": Visit(EMPTY_USER, lambda s: "/"),
    "dashboard": Visit(USER, lambda s: "/"),
    "examples": Visit(USER, lambda s: "/examples/", then=_open_examples),
    "new-lab": Visit(USER, lambda s: "/labs/new/"),
    "editor": Visit(USER, lambda s: f"/labs/{s.lab}/edit/"),
    "editor-with-an-error": Visit(USER, lambda s: f"/labs/{s.lab}/edit/", then=_break_a_field),
    "lab": Visit(USER, lambda s: f"/labs/{s.lab}/"),
    "lab-read-only": Visit(READER, lambda s: f"/labs/{s.shared}/"),
    "lab-running": Visit(USER, lambda s: f"/labs/{s.running}/"),
    "topology": Visit(USER, lambda s: f"/labs/{s.lab}/topology/", then=_pick_a_node),
    "terminals": Visit(USER, lambda s: f"/labs/{s.lab}/terminals/"),
    "terminals-open": Visit(USER, lambda s: f"/labs/{s.running}/terminals/?node=inside"),
    "calendar": Visit(USER, lambda s: "/calendar/"),
    "images": Visit(USER, lambda s: "/images/"),
    "images-admin": Visit(ADMIN, lambda s: "/images/"),
    "calendar-of-others": Visit(READER, lambda s: "/calendar/"),  # USER's booking is busy
    "refused": Visit(READER, lambda s: f"/labs/{s.shared}/terminals/", status=403),
    "not-found": Visit(USER, lambda s: "/labs/999999/", status=404),
}
# Pages not drawn from labmgr's templates, checked only for the files they ask for.
OTHER_PAGES: dict[str, Visit] = {
    "admin": Visit(ADMIN, lambda s: "/admin/"),
    "admin-reservations": Visit(ADMIN, lambda s: "/admin/reservations/reservation/"),
    "api-docs": Visit(USER, lambda s: "/api/docs/"),
    "api-root": Visit(USER, lambda s: "/api/"),
}


@pytest.fixture(scope="module")
def sessions(browser: Browser, live_server_url: str, site: Site) -> dict[str, Any]:
    """Each user's logged-in browser state, made once by the login form."""
    states: dict[str, Any] = {}
    for user in (EMPTY_USER, USER, READER, ADMIN):
        context = browser.new_context(base_url=live_server_url)
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("User name").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")
        states[user] = context.storage_state()
        context.close()
    return states


@pytest.fixture
def visit(
    browser: Browser, live_server_url: str, site: Site, sessions: dict[str, Any]
) -> Iterator[Callable[[str, dict[str, int]], Page]]:
    """`visit(page_name, viewport)` opens that page as its user; fails on script errors
    and on any file the page asks for that is not found."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def open_page(name: str, viewport: dict[str, int]) -> Page:
        spec = PAGES.get(name) or OTHER_PAGES[name]
        context = browser.new_context(
            base_url=live_server_url,
            viewport=viewport,
            storage_state=sessions[spec.user] if spec.user else None,
            reduced_motion="reduce",
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))

        def note_missing(response: Response) -> None:
            # The not-found page itself answers 404 on purpose; what it loads must not.
            expected = spec.status == 404 and response.request.is_navigation_request()
            if response.status == 404 and not expected:
                problems.append(f"{name}: 404 for {response.url}")

        page.on("response", note_missing)
        response = page.goto(spec.path(site))
        assert response is not None and response.status == spec.status, name
        page.wait_for_load_state("networkidle")
        if spec.then:
            spec.then(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, f"JavaScript errors or missing files: {problems}"


# --- what the page is made of, computed in the page ------------------------------------

CHECKS = Path(__file__).with_name("a11y_checks.js").read_text()


def screenshot(page: Page, what: str) -> None:
    """test-artifacts/a11y-<what>.png, the whole page."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"a11y-{what}.png"), full_page=True)


def prepare(page: Page) -> None:
    page.evaluate(CHECKS)
    # Styles settle (web fonts, stylesheets of ES modules) before anything is measured.
    page.evaluate("document.fonts.ready.then(() => true)")


def tab_walk(page: Page) -> tuple[set[int], list[str]]:
    """Presses Tab from the top of the page until focus comes round again; returns the
    marked controls reached and the ones whose focus did not show."""
    page.evaluate("window.__a11y.fromTheTop()")
    reached: set[int] = set()
    unseen: list[str] = []
    first: str | None = None
    for _ in range(400):
        page.keyboard.press("Tab")
        focused = page.evaluate("window.__a11y.focused()")
        if focused is None:
            break
        index, visible, described = focused
        if index == first:
            break
        if described.startswith("textarea") and "xterm" in (
            page.evaluate("document.activeElement.className") or ""
        ):
            page.keyboard.press("Escape")  # a terminal keeps Tab for its shell
        first = first or index
        if index:
            reached.add(int(index))
        if not visible:
            unseen.append(described)
    return reached, unseen


# --- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_fits_the_screen_with_every_control_in_view_and_uncovered(
    visit: Callable[[str, dict[str, int]], Page], name: str, size: str
) -> None:
    page = visit(name, VIEWPORTS[size])
    prepare(page)
    screenshot(page, f"{name}-{size}")
    problems = page.evaluate("window.__a11y.layout()")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_has_one_h1_a_title_landmarks_lang_and_named_controls(
    visit: Callable[[str, dict[str, int]], Page], name: str
) -> None:
    page = visit(name, LAPTOP)
    prepare(page)
    problems = page.evaluate("(x) => window.__a11y.structure(x)", PAGES[name].logged_in)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("size", ["laptop", "tablet"])
@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_text_and_control_borders_meet_aa_contrast(
    visit: Callable[[str, dict[str, int]], Page], name: str, size: str
) -> None:
    page = visit(name, VIEWPORTS[size])
    prepare(page)
    problems = page.evaluate("window.__a11y.contrast()")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("name", list(PAGES))
def test_tab_reaches_every_control_a_mouse_can_click_with_visible_focus(
    visit: Callable[[str, dict[str, int]], Page], name: str, size: str
) -> None:
    page = visit(name, VIEWPORTS[size])
    prepare(page)
    controls: list[list[str]] = page.evaluate("window.__a11y.mark()")
    reached, unseen = tab_walk(page)
    # A radio group is one Tab stop: reaching one of its buttons reaches the group.
    groups = {controls[i][1] for i in reached if controls[i][1]}
    missed = [
        described
        for i, (described, group) in enumerate(controls)
        if i not in reached and not (group and group in groups)
    ]
    assert not missed, "Tab never reaches:\n" + "\n".join(missed)
    assert not unseen, "focus does not show on:\n" + "\n".join(unseen)


@pytest.mark.parametrize("name", [*PAGES, *OTHER_PAGES])
def test_each_page_finds_its_icon_and_every_file_it_asks_for(
    visit: Callable[[str, dict[str, int]], Page], name: str
) -> None:
    page = visit(name, LAPTOP)  # the fixture fails on any file not found
    # The icon is fetched by the browser itself, out of the page's sight: ask as it does,
    # for the page's link or else /favicon.ico.
    icon = page.evaluate(
        "document.querySelector('link[rel~=icon]')?.href"
        " ?? new URL('/favicon.ico', location.href).href"
    )
    answer = page.request.get(icon)
    assert answer.status == 200, f"{name}: its icon {icon} answers {answer.status}"
    assert answer.headers["content-type"].startswith("image/"), icon


@pytest.mark.parametrize(
    ("name", "button", "question"),
    [
        ("lab", "Delete this lab", "Delete the lab two-nodes?"),
        ("calendar", "Cancel reservation", f"Cancel your booking of {HOST}"),
    ],
)
def test_a_confirmation_dialog_keeps_focus_inside_and_closes_with_escape(
    visit: Callable[[str, dict[str, int]], Page],
    name: str,
    button: str,
    question: str,
) -> None:
    page = visit(name, LAPTOP)
    opener = page.get_by_role("button", name=button)
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(question)
    screenshot(page, f"{name}-confirm")
    inside = "() => document.getElementById('confirm').contains(document.activeElement)"
    assert page.evaluate(inside), "focus did not move into the dialog"
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate(inside), "Tab left the open dialog"
    for _ in range(6):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(inside), "Shift+Tab left the open dialog"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    # Nothing was done: the page is still there, with what the dialog asked about.
    expect(opener).to_be_visible()


def test_the_calendar_can_be_booked_from_the_keyboard_instead_of_dragging(
    visit: Callable[[str, dict[str, int]], Page],
) -> None:
    page = visit("calendar", TABLET)
    expect(page.get_by_role("heading", name=f"Calendar of {HOST}")).to_be_visible()
    prepare(page)
    controls: list[list[str]] = page.evaluate("window.__a11y.mark()")
    reached, _ = tab_walk(page)
    reached_names = {controls[i][0] for i in reached}
    # The form alternative to dragging over the week: its times and its Book button.
    for label in ("Start (UTC)", "End (UTC)"):
        field = page.get_by_label(label)
        field.focus()
        assert int(field.get_attribute("data-a11y") or -1) in reached, label
    assert 'button "Book"' in reached_names


def test_a_terminal_keeps_tab_for_its_shell_and_escape_then_tab_moves_on(
    visit: Callable[[str, dict[str, int]], Page],
) -> None:
    page = visit("terminals-open", LAPTOP)
    expect(page.get_by_text("press Escape, then Tab, to move on")).to_be_visible()
    shell = page.locator('.term[data-node="inside"] textarea.xterm-helper-textarea')
    shell.focus()
    page.keyboard.press("Tab")
    expect(shell).to_be_focused()  # completion in the shell, not a way out
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="API documentation")).to_be_focused()
    shell.focus()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Close the terminal on inside")).to_be_focused()


@pytest.mark.parametrize("size", ["laptop", "tablet"])
def test_the_first_tab_shows_a_skip_link_that_leads_past_the_navigation(
    visit: Callable[[str, dict[str, int]], Page], size: str
) -> None:
    page = visit("dashboard", VIEWPORTS[size])
    prepare(page)
    page.evaluate("window.__a11y.fromTheTop()")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    # The next stop is inside the page's content, not the navigation again.
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")
