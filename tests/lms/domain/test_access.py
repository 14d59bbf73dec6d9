from lms.domain.access import (
    Principal,
    may_create_courses,
    may_edit_user,
    may_manage_course,
    may_read_contents,
)
from proto.api import Role

LEARNER = Principal(1, Role.LEARNER)
INSTRUCTOR = Principal(2, Role.INSTRUCTOR)
ADMIN = Principal(3, Role.ADMIN)


def test_only_instructors_and_admins_create_courses() -> None:
    assert not may_create_courses(LEARNER)
    assert may_create_courses(INSTRUCTOR)
    assert may_create_courses(ADMIN)


def test_a_course_is_managed_by_its_owner_and_admins_only() -> None:
    assert may_manage_course(INSTRUCTOR, owner_id=2)
    assert not may_manage_course(INSTRUCTOR, owner_id=99)
    assert not may_manage_course(LEARNER, owner_id=99)
    assert may_manage_course(ADMIN, owner_id=99)


def test_contents_are_read_by_enrolled_learners_and_managers() -> None:
    assert not may_read_contents(LEARNER, owner_id=2, enrolled=False)
    assert may_read_contents(LEARNER, owner_id=2, enrolled=True)
    assert may_read_contents(INSTRUCTOR, owner_id=2, enrolled=False)


def test_users_rename_themselves_but_only_admins_change_roles() -> None:
    assert may_edit_user(LEARNER, 1, changes_role=False)
    assert not may_edit_user(LEARNER, 1, changes_role=True)
    assert not may_edit_user(LEARNER, 2, changes_role=False)
    assert may_edit_user(ADMIN, 1, changes_role=True)
