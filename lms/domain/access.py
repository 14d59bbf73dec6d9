"""Who may do what: pure rules on a principal and the thing they act on."""

from __future__ import annotations

from dataclasses import dataclass

from proto.api import Role


@dataclass(frozen=True)
class Principal:
    """Who is making a request: the user their access token names, with the role their account
    has now (not the one it had when the token was issued)."""

    user_id: int
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class Standing:
    """What a user's row says about their access now: their role, and the generation their
    access tokens must carry (raised to revoke every token issued before)."""

    role: Role
    token_generation: int


def may_create_courses(who: Principal) -> bool:
    return who.role in (Role.INSTRUCTOR, Role.ADMIN)


def may_manage_course(who: Principal, owner_id: int) -> bool:
    """Edit a course, its modules and contents, delete it, see all its learners."""
    return who.is_admin or who.user_id == owner_id


def may_read_contents(who: Principal, owner_id: int, enrolled: bool) -> bool:
    return enrolled or may_manage_course(who, owner_id)


def may_edit_user(who: Principal, user_id: int, *, changes_role: bool) -> bool:
    """Anyone may rename themselves; only an admin changes roles or edits others."""
    return who.is_admin or (who.user_id == user_id and not changes_role)
