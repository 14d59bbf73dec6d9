"""`/api/v1/jobs`: the transcode queue, its workers, and retry/cancel; `/admin/jobs` shows them."""

from __future__ import annotations

from importlib import resources

from quart import Blueprint, Response, request
from quart_schema import tag

from lms.domain.access import Principal
from lms.errors import Invalid
from lms.http.wire import authenticated, query_int, respond, returns, services
from proto.jobs import JobState, JobView, WorkerView

blueprint = Blueprint("jobs", __name__)
JOBS = "/api/v1/jobs"
JOB = JOBS + "/<int:job_id>"
# Read once at start-up: a static page, not worth a thread hop per request.
ADMIN_PAGE = resources.files("lms").joinpath("static", "admin_jobs.html").read_bytes()


@blueprint.get(JOBS)
@tag(["jobs"])
@authenticated
@returns(list[JobView])
async def list_jobs(who: Principal) -> Response:
    """Newest first: every job for admins, their courses' jobs for instructors. `?state=`
    (queued, running, done, failed, cancelled), `?limit=` (1-200, default 50), `?offset=`."""
    raw_state = request.args.get("state")
    try:
        state = None if raw_state is None else JobState(raw_state)
    except ValueError:
        choices = ", ".join(s.value for s in JobState)
        raise Invalid(f"query parameter 'state' must be one of {choices}") from None
    jobs = await services().jobs.list(
        who,
        state=state,
        limit=query_int("limit", 50, 1, 200),
        offset=query_int("offset", 0, 0, 10_000_000),
    )
    return respond(jobs)


@blueprint.get(JOBS + "/workers")
@tag(["jobs"])
@authenticated
@returns(list[WorkerView])
async def list_workers(who: Principal) -> Response:
    """Transcoder slots of every node and `lms worker`, their current job and last heartbeat
    (admins)."""
    return respond(await services().jobs.workers(who))


@blueprint.get(JOB)
@tag(["jobs"])
@authenticated
@returns(JobView)
async def get_job(job_id: int, who: Principal) -> Response:
    return respond(await services().jobs.get(who, job_id))


@blueprint.post(JOB + "/cancel")
@tag(["jobs"])
@authenticated
@returns(JobView)
async def cancel_job(job_id: int, who: Principal) -> Response:
    """Cancel a queued or running job (its worker is stopped and its files removed); 409 once
    it has finished."""
    await request.get_data(cache=False)
    return respond(await services().jobs.cancel(who, job_id))


@blueprint.post(JOB + "/retry")
@tag(["jobs"])
@authenticated
@returns(JobView)
async def retry_job(job_id: int, who: Principal) -> Response:
    """Queue a failed or cancelled job again, with a fresh set of attempts; 409 otherwise."""
    await request.get_data(cache=False)
    return respond(await services().jobs.retry(who, job_id))


@blueprint.get("/admin/jobs")
@tag(["jobs"])
async def admin_jobs_page() -> Response:
    """The live jobs page (it signs in and polls the API itself)."""
    return Response(ADMIN_PAGE, content_type="text/html; charset=utf-8")
