"""The demo course seeded into an empty embedded database, so `make run` has something to show."""

from __future__ import annotations

from dataclasses import dataclass

from lms.accounts.passwords import hash_password
from lms.store import demo
from lms.store.database import Database

DEMO_PASSWORD = "demo-password"
INSTRUCTOR_EMAIL = "instructor@demo.lms"
LEARNER_EMAIL = "learner@demo.lms"


@dataclass(frozen=True)
class DemoLogins:
    instructor: str
    learner: str
    password: str


async def seed_demo(db: Database) -> DemoLogins:
    """Create the demo instructor, learner and course unless any course exists already."""
    password_hash = await hash_password(DEMO_PASSWORD)
    await db.transaction(demo.seed, password_hash, INSTRUCTOR_EMAIL, LEARNER_EMAIL)
    return DemoLogins(INSTRUCTOR_EMAIL, LEARNER_EMAIL, DEMO_PASSWORD)
