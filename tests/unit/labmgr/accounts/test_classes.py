"""Roles, classes and the templates a teacher publishes for members to copy."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from labmgr.accounts.choices import Role
from labmgr.accounts.models import Classroom
from labmgr.accounts.selectors import students_of, template_list_for, user_role
from labmgr.accounts.services import (
    classroom_create,
    template_copy,
    template_copy_for_class,
    template_publish,
)
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create
from tests.unit.labmgr.conftest import small_labfile


@pytest.fixture
def dave(db: None) -> User:
    return User.objects.create_user("dave")


@pytest.fixture
def net101(dave: User, alice: User, bob: User) -> Classroom:
    return classroom_create(name="net-101", teacher=dave, members=[alice, bob])


@pytest.fixture
def template_lab(dave: User) -> Lab:
    return lab_create(owner=dave, labfile_tree=small_labfile("routing"))


def test_roles_come_from_staff_and_the_profile(
    alice: User, root: User, dave: User, net101: Classroom
) -> None:
    assert [user_role(user=u) for u in (alice, dave, root)] == [
        Role.USER,
        Role.TEACHER,
        Role.ADMIN,
    ]


def test_a_class_is_a_group_with_its_teacher(
    net101: Classroom, dave: User, alice: User, bob: User
) -> None:
    assert (net101.group.name, net101.teacher) == ("net-101", dave)
    assert list(students_of(teacher=dave).order_by("username")) == [alice, bob]
    with pytest.raises(ApplicationError, match="A group named 'net-101' already exists"):
        classroom_create(name="net-101", teacher=dave)


def test_a_member_copies_a_published_template_into_a_lab_of_their_own(
    net101: Classroom, dave: User, alice: User, template_lab: Lab
) -> None:
    template = template_publish(actor=dave, classroom=net101, lab=template_lab)
    assert list(template_list_for(user=alice)) == [template]
    copy = template_copy(template=template, member=alice, actor=alice)
    assert (copy.lab.owner, copy.lab.name, copy.lab.document) == (
        alice,
        "routing",
        template_lab.document,
    )
    with pytest.raises(Conflict, match="alice already has a copy of 'routing'"):
        template_copy(template=template, member=alice, actor=alice)


def test_the_teacher_copies_for_the_whole_class_once(
    net101: Classroom, dave: User, alice: User, bob: User, template_lab: Lab
) -> None:
    template = template_publish(actor=dave, classroom=net101, lab=template_lab)
    template_copy(template=template, member=alice, actor=alice)
    copies = template_copy_for_class(template=template, actor=dave)
    assert [c.user for c in copies] == [bob]
    assert sorted(Lab.objects.filter(name="routing").values_list("owner__username", flat=True)) == [
        "alice",
        "bob",
        "dave",
    ]
    assert template_copy_for_class(template=template, actor=dave) == []


def test_only_the_teacher_publishes_and_copies_for_others(
    net101: Classroom, alice: User, bob: User, charlie: User, template_lab: Lab, dave: User
) -> None:
    own = lab_create(owner=alice, labfile_tree=small_labfile("mine"))
    with pytest.raises(NotAllowed, match="Only the teacher of net-101 may publish"):
        template_publish(actor=alice, classroom=net101, lab=own)
    template = template_publish(actor=dave, classroom=net101, lab=template_lab)
    with pytest.raises(NotAllowed, match="Only bob or the teacher of net-101"):
        template_copy(template=template, member=bob, actor=alice)
    with pytest.raises(ApplicationError, match="charlie is not in net-101"):
        template_copy(template=template, member=charlie, actor=dave)
    with pytest.raises(NotAllowed, match="whole class"):
        template_copy_for_class(template=template, actor=alice)
