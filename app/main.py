"""The ASGI app: `app.main:app`, built by `create_app` from the settings."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anyio
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.api.allowed_methods import AllowedMethods
from app.api.body_limit import BodyLimit, BodySizeLimit, upload_limit
from app.api.database_errors import install_database_error_handlers
from app.api.errors import install_error_handlers
from app.api.page_policy import SameOriginPages
from app.api.pending_limit import PendingRequestLimit
from app.api.request_id import RequestId
from app.api.store_errors import install_store_error_handlers
from app.api.unexpected import CatchUnexpected
from app.auth.grant_cache import GrantCache
from app.core.async_reads import Reader, make_async_read_engine
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker
from app.core.logs import configure_api_logging
from app.core.notifications import ChangeNotifications
from app.docs_pages import mount_docs_pages
from app.jobs.metrics import job_metrics
from app.jobs.service import active_jobs_using
from app.jobs.stream import StreamSource
from app.metrics.database import DatabaseMetric
from app.metrics.http import HttpMetrics
from app.metrics.registry import ServiceMetrics, build_metrics
from app.router import root_router
from app.ui import mount_dashboard
from app.webhooks.metrics import webhook_metrics
from app.workers.metrics import worker_metrics

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPLOAD_PATH = "/v1/files"
# Threads that read for the open event streams, apart from the request threads, so that a wave of
# events waking hundreds of streams queues behind these few and never starves requests of threads.
STREAM_READERS = 4
# Connections past one per thread: a session ends (and gives its connection back) after its thread
# is released, and the metrics and readiness probes read the database too.
POOL_HEADROOM = 8
# How long a resolved API key's tenant is reused by the routes that re-check the key in their own query;
# then the key is looked up again, which also records its use (`last_used_at`, to the minute).
KEY_CACHE_SECONDS = 60.0
DESCRIPTION = """\
Distillery turns a large model into a small one by knowledge distillation. Upload a dataset, post a
job that names a teacher, a student and a method, follow its events, then download the trained student
in `save_pretrained` form. Every request carries an API key: `Authorization: Bearer dk-...` (in Swagger
UI, at [/docs](/docs), enter it once with the Authorize button). A dashboard of the jobs is at [/ui/](/ui/).
"""
TAGS = [
    {"name": "files", "description": "Datasets (JSONL, CSV, Parquet), checked on upload."},
    {"name": "jobs", "description": "Distillation jobs, their events, checkpoints and artifacts."},
    {
        "name": "sweeps",
        "description": "Recipe sweeps: trials of a base job chosen by Optuna on the eval split, the best one "
        "measured once on the test split against one control.",
    },
    {"name": "webhooks", "description": "Signed callbacks (Standard Webhooks) on every job event."},
    {"name": "workers", "description": "The live job workers and what each has: devices, memory, versions."},
    {"name": "health", "description": "Probes for load balancers and orchestrators."},
    {"name": "metrics", "description": "Prometheus metrics of jobs, queue, workers and HTTP requests."},
]
# The online validator would send the spec's URL to a public host: the page must work air-gapped.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def package_version() -> str:
    """The installed package's version, for the OpenAPI document."""
    try:
        return version("distillery")
    except PackageNotFoundError:
        return "0.0.0"


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply the Alembic migrations to the settings' database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = settings.database_url
    command.upgrade(config, revision)


def make_api_engine(settings: Settings) -> Engine:
    """The API's engine: a connection per request thread and per stream reader, and a few to spare."""
    return make_engine(
        settings.database_url,
        timeout_seconds=settings.database_timeout_seconds,
        pool_size=settings.api_threads + STREAM_READERS,
        max_overflow=POOL_HEADROOM,
    )


def make_reader(settings: Settings, engine: Engine) -> Reader:
    """Reads on the event loop where the database has an async driver, in threads elsewhere."""
    # As many kept connections as request threads, a few more for peaks: with fewer, overflow connections
    # were opened and closed per request, which cost more than the read.
    async_engine = make_async_read_engine(
        settings.database_url,
        timeout_seconds=settings.database_timeout_seconds,
        pool_size=settings.api_threads,
        max_overflow=POOL_HEADROOM,
    )
    return Reader(async_engine, engine)


def database_metrics(settings: Settings) -> list[DatabaseMetric]:
    """Every metric read from the database at scrape time; a domain with metrics of its own adds them here."""
    return [*job_metrics(settings), *webhook_metrics(), *worker_metrics(settings)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for some settings (default: the process's, from the environment)."""
    settings = settings or get_settings()
    configure_api_logging(settings)
    engine = make_api_engine(settings)
    notifications = ChangeNotifications(
        settings.database_url, connect_timeout=settings.database_timeout_seconds
    )
    # Swagger UI's and ReDoc's files from fastapi-offline, not a CDN; their pages are app.docs_pages'.
    app = FastAPIOffline(
        docs_url=None,
        redoc_url=None,
        title="Distillery",
        description=DESCRIPTION,
        version=package_version(),
        openapi_tags=TAGS,
        lifespan=_lifespan(settings, engine, notifications),
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.read_sessionmaker = make_sessionmaker(engine, read_only=True)
    app.state.reader = make_reader(settings, engine)
    app.state.grants = GrantCache(ttl_seconds=KEY_CACHE_SECONDS)
    # Files sit below jobs: a file's deletion learns from here which unfinished jobs still read it.
    app.state.file_users = active_jobs_using
    app.state.stream_source = StreamSource(
        app.state.read_sessionmaker,
        notifications,
        poll_seconds=settings.event_stream_poll_seconds,
        readers=anyio.CapacityLimiter(STREAM_READERS),
    )
    metrics = build_metrics(
        engine=engine, sessions=app.state.read_sessionmaker, database_metrics=database_metrics(settings)
    )
    app.state.metrics = metrics
    install_error_handlers(app)
    async_engine = app.state.reader.engine
    install_database_error_handlers(app, engine, *([async_engine.sync_engine] if async_engine else []))
    install_store_error_handlers(app)
    _add_middleware(app, settings, metrics)
    app.include_router(root_router)
    mount_docs_pages(app)
    mount_dashboard(app)
    return app


def _lifespan(
    settings: Settings, engine: Engine, notifications: ChangeNotifications
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: the thread limiter, migrations where embedded, the change listener."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every sync handler and dependency runs in this limiter's threads, each holding at most one
        # pooled connection at a time: with as many connections as threads, none waits for one.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        # The embedded default migrates itself so that a fresh machine just works; a production
        # deployment migrates once, explicitly, before rolling out.
        if settings.is_embedded:
            await run_in_threadpool(upgrade_database, settings)
        if settings.environment == "development" and settings.dev_api_key:
            logging.getLogger("app.dev_key").warning(
                "development API key (tenant 'default'): %s", settings.dev_api_key
            )
        listener = asyncio.create_task(
            notifications.run(app.state.database_outage), name="change-notifications"
        )
        yield
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await app.state.reader.dispose()
        engine.dispose()

    return lifespan


def _add_middleware(app: FastAPI, settings: Settings, metrics: ServiceMetrics) -> None:
    """The middleware stack, added innermost first."""
    # CatchUnexpected wraps the ones before it, so nothing they raise drops a connection.
    app.add_middleware(AllowedMethods, routes=app.router.routes)
    app.add_middleware(
        BodySizeLimit,
        default=BodyLimit(settings.max_request_bytes),
        post_routes={UPLOAD_PATH: upload_limit(settings.max_upload_bytes)},
    )
    app.add_middleware(SameOriginPages)
    app.add_middleware(CatchUnexpected)
    app.add_middleware(PendingRequestLimit, max_pending=settings.api_max_pending_requests)
    # Outside CatchUnexpected, so a 500 it answers is counted; RequestId outermost, so every line is tagged.
    app.add_middleware(
        HttpMetrics,
        requests=metrics.http_requests,
        durations=metrics.http_durations,
        stream_durations=metrics.stream_durations,
        routes=app.router.routes,
    )
    app.add_middleware(RequestId)


app = create_app()
