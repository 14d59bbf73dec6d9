"""The dashboards' answers: read from the store in one unit of work, shaped by the pure rules
in `lms.domain`, and kept in the node's cache under the tags every change invalidates
(`lms.analytics.tags`).

Theory of operation
-------------------
Each answer is one `Cache.get_or_compute_encoded`: a hit costs no database read and no
decoding (the JSON kept in the cache is what the edge sends); a miss crosses the bridge once
(one transaction, so its facts are one snapshot) and the rules run on the trio side. A key
names everything the answer depends on besides the tags' data:

- A learner's answers depend on their time zone and courses, which a small cached read
  (`learner_context`, tagged with the user) gives first. Their dashboard's key holds their
  local date (the current streak moves at midnight without any write) and a digest of their
  course ids, and it carries those courses' tags, so a content edit in any of them outdates it.
  If an enrolment lands between the two reads, the answer computed from the newer data is
  stored under the older digest, which no reader asks for once the context is read again.
- Active users count over trailing windows, so course analytics and the admin dashboard keys
  hold the UTC hour (the store counts to the hour).

Access is checked on every request, before the answer is looked up: course analytics against
the course's own row, which the catalog keeps in the cache (`Catalog.course`), so neither an
instructor's 403 nor a 200 costs a read or decodes the large answer to find its owner.

A node starting cold has no request counts to say what is worth caching, so `warm` asks
PostgreSQL which courses had the most learners active over the last day and computes their
analytics one after another (the node runs it in the background once it serves).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from lms.analytics import tags
from lms.cache.cache import Cache, Computation
from lms.catalog.service import Catalog
from lms.domain.access import Principal, may_manage_course
from lms.domain.active_users import ActiveUsers, since
from lms.domain.funnel import funnel
from lms.domain.local_days import local_date, utc_bounds
from lms.domain.progress import course_progress
from lms.domain.resume import finished_at, resume_content
from lms.domain.retention import Plays, drop_offs, retention
from lms.domain.streaks import learner_streaks
from lms.domain.watch_time import Bucket, InvalidRange, buckets
from lms.errors import Forbidden, Invalid, NotFound
from lms.store import activity
from lms.store import analytics as store
from lms.store.analytics import CourseFacts, LearnerContext, LearnerFacts, PlatformFacts
from lms.store.database import Database
from proto.dashboard import (
    ActiveCounts,
    ActivityKind,
    AdminDashboard,
    CourseAnalytics,
    DropOff,
    FunnelStep,
    LearnerStats,
    ProgressOverTime,
    RecentActivity,
    ResumePoint,
    TopCourse,
    VideoRetention,
    WatchTimeBucket,
)

# How long an answer may be kept at most (the cache shortens each by a random jitter). Every
# write that changes one invalidates it, so these only bound what a missed invalidation costs.
LEARNER_TTL = 600.0
COURSE_TTL = 600.0
# Jobs moved by `lms worker` processes on other machines reach this node's live layer but not
# its event sink, so the transcode queue shown may lag this long.
ADMIN_TTL = 30.0

# Course analytics a starting node computes ahead of the first request, and over what window
# activity chooses them.
WARM_COURSES = 10
WARM_WINDOW = timedelta(days=1)

RECENT_ACTIVITY = 10
DEFAULT_DAYS = 30
DROP_OFFS = 3
RECENT_FAILURES = 10
TOP_COURSES = 10
# Shares to four decimals: a one-hour video's curve is 3,600 numbers, and 0.3333 says as much
# as 0.3333333333333333 on a chart.
SHARE_DIGITS = 4


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Analytics:
    def __init__(
        self, db: Database, cache: Cache, *, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._db = db
        self._cache = cache
        self._catalog = Catalog(db, cache)
        self._clock = clock

    # --- learners -----------------------------------------------------------------------------

    async def stats(self, who: Principal) -> bytes:
        """The caller's dashboard as JSON (a `LearnerStats`): courses, watch time, streaks,
        recent activity, resume points."""
        context = await self._context(who.user_id)
        zone = ZoneInfo(context.time_zone)
        now = self._clock()
        key = f"dashboard:stats:{who.user_id}:{local_date(now, zone)}:{_digest(context)}"
        tagged = [tags.user(who.user_id), *map(tags.course, context.course_ids)]

        async def compute() -> LearnerStats:
            facts = await self._db.transaction(store.learner_facts, who.user_id, RECENT_ACTIVITY)
            return _learner_stats(facts, context.time_zone, self._clock())

        return await self._cache.get_or_compute_encoded(key, tagged, LEARNER_TTL, compute)

    async def progress(
        self, who: Principal, *, first: date | None, last: date | None, bucket: Bucket
    ) -> bytes:
        """As JSON (a `ProgressOverTime`), the caller's watch time and completions per local
        day or week over `first..last` (default: `last` is today, `first` the `DEFAULT_DAYS`th
        day up to it).

        Raises:
          Invalid: the range ends before it starts, or needs too many buckets.
        """
        context = await self._context(who.user_id)
        zone = ZoneInfo(context.time_zone)
        if last is None:
            last = local_date(self._clock(), zone)
        if first is None:
            first = last - timedelta(days=DEFAULT_DAYS - 1)
        try:
            # The rule's own check, on no activity, before anything is read.
            buckets((), zone, bucket=bucket, first=first, last=last)
        except InvalidRange as exc:
            raise Invalid(f"{exc} - query parameters 'from' and 'to'") from None
        key = f"dashboard:progress:{who.user_id}:{context.time_zone}:{first}:{last}:{bucket.value}"

        async def compute() -> ProgressOverTime:
            start, end = utc_bounds(first, last, zone)
            hours = await self._db.connection(activity.user_activity, who.user_id, start, end)
            chart = buckets(hours, zone, bucket=bucket, first=first, last=last)
            return ProgressOverTime(
                time_zone=context.time_zone,
                first=first,
                last=last,
                bucket=bucket.value,
                buckets=[WatchTimeBucket(b.start, b.watched_seconds, b.completions) for b in chart],
                watched_seconds=math.fsum(b.watched_seconds for b in chart),
                completions=sum(b.completions for b in chart),
            )

        return await self._cache.get_or_compute_encoded(
            key, [tags.user(who.user_id)], LEARNER_TTL, compute
        )

    async def _context(self, user_id: int) -> LearnerContext:
        async def compute() -> LearnerContext | None:
            return await self._db.connection(store.learner_context, user_id)

        context = await self._cache.get_or_compute(
            f"dashboard:learner:{user_id}",
            [tags.user(user_id)],
            LEARNER_TTL,
            compute,
            LearnerContext | None,
        )
        if context is None:
            raise NotFound("this account no longer exists")
        return context

    # --- instructors --------------------------------------------------------------------------

    async def course(self, who: Principal, course_id: int) -> bytes:
        """A course's analytics as JSON (a `CourseAnalytics`), for its instructor and admins.

        Raises:
          NotFound: no such course.  Forbidden: the caller neither owns it nor is an admin.
        """
        course = await self._catalog.course(course_id)
        if not may_manage_course(who, course.owner_id):
            raise Forbidden("only the course's instructor or an admin may see its analytics")
        c = self._course_analytics(course_id)
        return await self._cache.get_or_compute_encoded(c.key, c.tags, c.ttl, c.compute)

    async def warm(self, courses: int = WARM_COURSES) -> int:
        """Cache the analytics of the `courses` courses with the most learners active over
        `WARM_WINDOW`, one after another; returns how many were cached."""
        busiest = await self._db.connection(
            activity.busiest_courses, self._clock() - WARM_WINDOW, courses
        )
        return await self._cache.warm(map(self._course_analytics, busiest))

    def _course_analytics(self, course_id: int) -> Computation[CourseAnalytics]:
        hour = self._clock().astimezone(UTC).strftime("%Y%m%dT%H")

        async def compute() -> CourseAnalytics:
            now = self._clock()
            facts = await self._db.transaction(store.course_facts, course_id, since(now))
            if facts is None:
                raise NotFound(f"no course with id {course_id}")
            return _course_analytics(facts, now)

        return Computation(
            f"dashboard:course:{course_id}:{hour}",
            [tags.course(course_id)],
            COURSE_TTL,
            compute,
        )

    # --- admins -------------------------------------------------------------------------------

    async def admin(self, who: Principal) -> bytes:
        """The platform at a glance as JSON (an `AdminDashboard`), for admins.

        Raises:
          Forbidden: the caller is not an admin.
        """
        if not who.is_admin:
            raise Forbidden("only admins may see the platform's dashboard")
        hour = self._clock().astimezone(UTC).strftime("%Y%m%dT%H")

        async def compute() -> AdminDashboard:
            now = self._clock()
            facts = await self._db.transaction(
                store.platform_facts, since(now), failures=RECENT_FAILURES, top=TOP_COURSES
            )
            return _admin_dashboard(facts, now)

        return await self._cache.get_or_compute_encoded(
            f"dashboard:admin:{hour}", [tags.PLATFORM], ADMIN_TTL, compute
        )


def _digest(context: LearnerContext) -> str:
    ids = ",".join(map(str, context.course_ids)).encode()
    return hashlib.blake2b(ids, digest_size=8).hexdigest()


def _learner_stats(facts: LearnerFacts, time_zone: str, now: datetime) -> LearnerStats:
    zone = ZoneInfo(time_zone)
    streaks = learner_streaks(facts.active_hours, zone, now)
    courses = [course_progress(c.course_id, c.title, c.contents) for c in facts.courses]
    titles = {c.course_id: c.title for c in courses}
    content_titles = {item.content_id: item.title for c in courses for item in c.contents}
    recent: list[RecentActivity] = [
        RecentActivity(
            ActivityKind.STARTED,
            s.hour,
            s.course_id,
            titles[s.course_id],
            s.content_id,
            content_titles[s.content_id],
        )
        for s in facts.started
        if s.course_id in titles and s.content_id in content_titles  # still enrolled
    ]
    resume: list[tuple[datetime | None, ResumePoint]] = []
    completed = in_progress = 0
    for course in courses:
        for item in course.contents:
            if item.completed_at is not None:
                recent.append(
                    RecentActivity(
                        ActivityKind.COMPLETED,
                        item.completed_at,
                        course.course_id,
                        course.title,
                        item.content_id,
                        item.title,
                    )
                )
        finished = finished_at(course.contents)
        if finished is not None:
            completed += 1
            recent.append(
                RecentActivity(
                    ActivityKind.COURSE_FINISHED,
                    finished,
                    course.course_id,
                    course.title,
                    None,
                    None,
                )
            )
            continue
        if course.last_activity_at is not None:
            in_progress += 1
        at = resume_content(course.contents)
        resume.append(
            (
                course.last_activity_at,
                ResumePoint(
                    course_id=course.course_id,
                    course_title=course.title,
                    percent=course.percent,
                    content_id=None if at is None else at.content_id,
                    content_title=None if at is None else at.title,
                    kind=None if at is None else at.kind,
                    position=0.0 if at is None else at.position,
                ),
            )
        )
    # Newest first; on one instant a course's finish before its last completion before a start.
    order = {ActivityKind.COURSE_FINISHED: 0, ActivityKind.COMPLETED: 1, ActivityKind.STARTED: 2}
    recent.sort(key=lambda r: (-r.at.timestamp(), order[r.kind]))
    # Most recently active first, untouched courses after them in enrolment order.
    never = datetime.min.replace(tzinfo=UTC)
    resume.sort(key=lambda pair: pair[0] or never, reverse=True)
    return LearnerStats(
        time_zone=time_zone,
        courses_in_progress=in_progress,
        courses_completed=completed,
        courses_not_started=len(courses) - completed - in_progress,
        watched_seconds=math.fsum(c.watched_seconds for c in courses),
        current_streak=streaks.current,
        longest_streak=streaks.longest,
        recent_activity=recent[:RECENT_ACTIVITY],
        resume=[point for _, point in resume],
        computed_at=now,
    )


def _active(counts: list[int]) -> ActiveCounts:
    active = ActiveUsers.from_counts(counts)
    return ActiveCounts(day=active.day, week=active.week, month=active.month)


def _course_analytics(facts: CourseFacts, now: datetime) -> CourseAnalytics:
    steps = funnel([c.tally for c in facts.contents], facts.enrolled)
    videos = []
    for content in facts.contents:
        duration = content.tally.duration
        if duration is None:
            continue
        plays = facts.plays.get(content.tally.content_id, _NOBODY)
        curve = retention(duration, plays)
        videos.append(
            VideoRetention(
                content_id=content.tally.content_id,
                title=content.title,
                duration=duration,
                viewers=plays.viewers,
                retention=np.round(curve, SHARE_DIGITS).tolist(),
                drop_offs=[
                    DropOff(start=d.start, end=d.end, at=d.at, drop=round(d.drop, SHARE_DIGITS))
                    for d in drop_offs(curve, DROP_OFFS)
                ],
            )
        )
    return CourseAnalytics(
        course_id=facts.course_id,
        title=facts.title,
        owner_id=facts.owner_id,
        enrolled=facts.enrolled,
        active_learners=_active(facts.active),
        funnel=[
            FunnelStep(
                content_id=step.content_id,
                title=content.title,
                kind=content.kind,
                started=step.started,
                completed=step.completed,
                started_share=step.started_share,
                completed_share=step.completed_share,
                coverage=step.coverage,
            )
            for step, content in zip(steps.steps, facts.contents, strict=True)
        ],
        coverage=steps.coverage,
        videos=videos,
        computed_at=now,
        clamped=facts.clamped,
    )


_NOBODY = Plays(starts=np.empty(0), ends=np.empty(0), viewers=0)


def _admin_dashboard(facts: PlatformFacts, now: datetime) -> AdminDashboard:
    return AdminDashboard(
        users=sum(facts.users_by_role.values()),
        users_by_role=facts.users_by_role,
        active_users=_active(facts.active),
        enrolments=facts.enrolments,
        completions=facts.completions,
        watched_seconds=facts.watched_seconds,
        transcode_queue=facts.jobs_by_state,
        recent_failures=facts.recent_failures,
        top_courses=[
            TopCourse(
                course_id=c.course_id,
                title=c.title,
                enrolled=c.enrolled,
                completions=c.completions,
                watched_seconds=c.watched_seconds,
            )
            for c in facts.top_courses
        ],
        computed_at=now,
    )
