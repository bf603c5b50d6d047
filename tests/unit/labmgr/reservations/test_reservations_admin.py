"""The admin pages of reservations, users, classes and templates, and their actions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from labmgr.accounts.services import classroom_create, template_publish
from labmgr.labs.models import Lab
from labmgr.reservations.models import Reservation
from tests.unit.labmgr.reservations.helpers import WHOLE, Book, at, share


@pytest.fixture
def admin_client_(client: Client, root: User) -> Client:
    client.force_login(root)
    return client


@pytest.mark.parametrize(
    "page",
    [
        "reservations/reservation/",
        "auth/user/",
        "auth/group/",
        "accounts/labtemplate/",
    ],
)
def test_every_people_and_booking_page_renders(
    admin_client_: Client, book: Book, alice: User, alice_lab: Lab, page: str
) -> None:
    book(alice, 1, 2, share())
    classroom = classroom_create(name="net-101", teacher=alice)
    template_publish(actor=alice, classroom=classroom, lab=alice_lab)
    response = admin_client_.get(f"/admin/{page}")
    assert response.status_code == 200


def test_the_user_page_edits_role_and_quotas(admin_client_: Client, alice: User) -> None:
    page = admin_client_.get(f"/admin/auth/user/{alice.pk}/change/").content.decode()
    assert "role and quotas" in page.lower()
    assert "max_memory" in page


def test_extend_stops_at_the_next_booking(
    admin_client_: Client, book: Book, alice: User, bob: User
) -> None:
    mine = book(alice, 1, 2, WHOLE)
    book(bob, 2.5, 3, WHOLE)
    response = admin_client_.post(
        "/admin/reservations/reservation/",
        {"action": "extend_one_hour", "_selected_action": [mine.pk]},
        follow=True,
    )
    assert response.status_code == 200
    mine.refresh_from_db()
    assert mine.end == at(2.5)


def test_cancel_from_the_admin(admin_client_: Client, book: Book, alice: User) -> None:
    mine = book(alice, 1, 2, WHOLE)
    admin_client_.post(
        "/admin/reservations/reservation/",
        {"action": "cancel", "_selected_action": [mine.pk]},
    )
    assert Reservation.objects.get(pk=mine.pk).status == "cancelled"
