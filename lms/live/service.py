"""What the live edges need besides moving frames: whether a caller may be in a course's room
(and as what), and announcements with their audience. Who a token is, the edges ask
`Accounts.authenticate`, as for any request."""

from __future__ import annotations

import itertools
import time
import uuid

from actors.connection import Peer
from actors.live_router import LiveRouter
from lms.domain.access import Principal, may_manage_course, may_read_contents
from lms.errors import Forbidden, NotFound, Unauthenticated
from lms.store import rooms
from lms.store.database import Database
from proto.frames import Announcement, Role
from proto.live import Announced


class LiveService:
    def __init__(self, db: Database, router: LiveRouter) -> None:
        self._db = db
        self.router = router
        self._connections = itertools.count(1)

    async def peer(self, who: Principal, course_id: int | None, device_id: str | None) -> Peer:
        """Who a new connection is: for a course's progress socket, checked against the course
        (its enrolled learners, its owner and admins; owner and admins are its instructors).

        Raises:
          NotFound: no such course.  Forbidden: not enrolled.
          Unauthenticated: the token's user no longer exists.
        """
        conn = f"{self.router.node}/{next(self._connections)}"
        if course_id is None:
            name = await self._db.transaction(rooms.user_name, who.user_id)
            if name is None:
                raise Unauthenticated("this user no longer exists")
            return Peer(conn, who.user_id, name, device_id)
        access = await self._access(who, course_id)
        if not may_read_contents(who, access.owner_id, access.enrolled):
            raise Forbidden("enrol in this course to join its live room")
        role: Role = "instructor" if may_manage_course(who, access.owner_id) else "learner"
        return Peer(conn, who.user_id, access.name, device_id, course_id, role)

    async def announce(self, who: Principal, course_id: int, text: str) -> Announcement:
        """Send an announcement to everyone in the course, on every node, now.

        Raises:
          NotFound: no such course.  Forbidden: not its instructor (or an admin).
        """
        access = await self._access(who, course_id)
        if not may_manage_course(who, access.owner_id):
            raise Forbidden("only the course's instructor or an admin may announce")
        audience = await self._db.transaction(rooms.course_audience, course_id)
        announced = Announced(
            course_id, uuid.uuid4().hex, who.user_id, access.name, text, time.time(), audience
        )
        self.router.announce(announced)
        return Announcement(course_id, announced.id, who.user_id, access.name, text, announced.at)

    async def _access(self, who: Principal, course_id: int) -> rooms.RoomAccess:
        access = await self._db.transaction(rooms.room_access, course_id, who.user_id)
        if access is None:
            raise NotFound(f"no course with id {course_id}")
        return access
