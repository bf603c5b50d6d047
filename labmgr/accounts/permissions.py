"""Who may do what: the one authorization table of labmgr.

For every resource, each actor's relation to it (owner, member of a group it is shared
with, teacher of the owner's class, other user, anonymous, admin) decides what is
allowed. A refusal is 404 when the actor may not even know the object exists (it cannot
view it), 403 when it can view it but not do this, 401 for the anonymous. The REST API,
the HTML views, the websockets, the terminal, metrics, exports and the admin ask here.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet
from django.http import Http404

from labmgr.accounts import selectors
from labmgr.errors import ApplicationError, NotAllowed


class Actor(StrEnum):
    OWNER = "owner"
    MEMBER = "member"  # in a group the object is shared with
    TEACHER = "teacher"  # teaches a class the owner is in
    OTHER = "other"
    ANONYMOUS = "anonymous"
    ADMIN = "admin"


class Resource(StrEnum):
    LAB = "lab"
    DEPLOYMENT = "deployment"
    RESERVATION = "reservation"
    TERMINAL = "terminal"
    STREAM = "stream"  # a lab's websocket of status, steps and metrics
    METRICS = "metrics"
    EXPORT = "export"
    HOST = "host"


class Action(StrEnum):
    VIEW = "view"  # see it, list it, read it
    CHANGE = "change"  # edit, delete, deploy, destroy, cancel, open a terminal
    BOOK = "book"  # reserve (hosts only)


class Decision(StrEnum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not found"  # 404
    UNAUTHENTICATED = "unauthenticated"  # 401


A = Actor
_LAB_READERS = frozenset({A.OWNER, A.MEMBER, A.TEACHER, A.ADMIN})
_RUNNERS = frozenset({A.OWNER, A.ADMIN})
_SIGNED_IN = frozenset({A.OWNER, A.MEMBER, A.TEACHER, A.OTHER, A.ADMIN})

# The table. An action missing for a resource is allowed to nobody.
RULES: dict[Resource, dict[Action, frozenset[Actor]]] = {
    Resource.LAB: {Action.VIEW: _LAB_READERS, Action.CHANGE: _RUNNERS},
    Resource.EXPORT: {Action.VIEW: _LAB_READERS},
    Resource.DEPLOYMENT: {Action.VIEW: _LAB_READERS, Action.CHANGE: _RUNNERS},
    Resource.STREAM: {Action.VIEW: _LAB_READERS},
    Resource.METRICS: {Action.VIEW: _LAB_READERS},
    # A terminal is a root shell in a node: only who runs the lab, though readers of the
    # lab know it exists.
    Resource.TERMINAL: {Action.VIEW: _LAB_READERS, Action.CHANGE: _RUNNERS},
    # Reservations are never shared; a teacher follows the class's bookings.
    Resource.RESERVATION: {
        Action.VIEW: frozenset({A.OWNER, A.TEACHER, A.ADMIN}),
        Action.CHANGE: _RUNNERS,
    },
    # Every signed-in user sees every host and may book one; only admins change them.
    Resource.HOST: {
        Action.VIEW: _SIGNED_IN,
        Action.BOOK: _SIGNED_IN,
        Action.CHANGE: frozenset({A.ADMIN}),
    },
}


def decide(actor: Actor, resource: Resource, action: Action) -> Decision:
    """The outcome of `actor` doing `action` to `resource`, from the table."""
    rules = RULES[resource]
    if actor in rules.get(action, frozenset()):
        return Decision.ALLOW
    if actor is Actor.ANONYMOUS:
        return Decision.UNAUTHENTICATED
    if actor not in rules.get(Action.VIEW, frozenset()):
        return Decision.NOT_FOUND
    return Decision.FORBIDDEN


def actor_for(
    user: User | AnonymousUser | None, *, owner_id: int | None, shared_group_ids: Iterable[int] = ()
) -> Actor:
    """The user's relation to an object owned by `owner_id` (None: owned by nobody, like
    a host) and shared with the groups `shared_group_ids`."""
    if user is None or not user.is_authenticated:
        return Actor.ANONYMOUS
    if selectors.user_is_admin(user=user):
        return Actor.ADMIN
    if owner_id is None:
        return Actor.OTHER
    if owner_id == user.pk:
        return Actor.OWNER
    if selectors.user_teaches(teacher=user, student_id=owner_id):
        return Actor.TEACHER
    shared = set(shared_group_ids)
    if shared and user.groups.filter(pk__in=shared).exists():
        return Actor.MEMBER
    return Actor.OTHER


def actor_for_lab(user: User | AnonymousUser | None, lab: Any) -> Actor:
    groups = [g.pk for g in lab.groups()]
    return actor_for(user, owner_id=lab.owner_id, shared_group_ids=groups)


def actor_for_object(user: User | AnonymousUser | None, resource: Resource, obj: Any) -> Actor:
    """The relation for any resource: lab-bound ones follow their lab."""
    if resource is Resource.HOST:
        return actor_for(user, owner_id=None)
    if resource is Resource.RESERVATION:
        return actor_for(user, owner_id=obj.owner_id)
    if resource is Resource.LAB or resource is Resource.EXPORT:
        return actor_for_lab(user, obj)
    lab = getattr(obj, "lab", obj)  # a deployment, or the lab of a stream/terminal/metrics
    return actor_for_lab(user, lab)


def allowed(
    user: User | AnonymousUser | None, resource: Resource, action: Action, obj: Any
) -> bool:
    actor = actor_for_object(user, resource, obj)
    return decide(actor, resource, action) is Decision.ALLOW


class Unauthenticated(ApplicationError):
    status = 401


def require(
    user: User | AnonymousUser | None,
    resource: Resource,
    action: Action,
    obj: Any,
    message: str = "",
) -> None:
    """Raise the refusal the table gives: Http404, NotAllowed (403) or Unauthenticated."""
    decision = decide(actor_for_object(user, resource, obj), resource, action)
    if decision is Decision.ALLOW:
        return
    if decision is Decision.NOT_FOUND:
        raise Http404
    if decision is Decision.UNAUTHENTICATED:
        raise Unauthenticated("Authentication credentials were not provided.")
    raise NotAllowed(message or f"You may see this {resource} but not {action} it.")


def owners_visible_q(user: User, field: str = "owner") -> Q:
    """Rows owned by the user or by a student of theirs (`field` names the owner FK)."""
    students = selectors.students_of(teacher=user).values("pk")
    return Q(**{field: user}) | Q(**{f"{field}__in": students})


def labs_visible(user: User, labs: QuerySet[Any]) -> QuerySet[Any]:
    """The labs of `labs` the user may view: own, shared with a group of theirs, of a
    student of theirs; all for admins."""
    if selectors.user_is_admin(user=user):
        return labs
    shared = labs.model.shared_with.through.objects.filter(group__user=user).values("lab_id")
    return labs.filter(owners_visible_q(user) | Q(pk__in=shared))
