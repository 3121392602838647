"""One settings object for every process, read from DISTILLERY_* environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def is_s3_url(root: Path | str) -> bool:
    """Whether a model root names a folder of an object store (`s3://bucket/prefix`)."""
    return isinstance(root, str) and root.startswith("s3://")


DEV_API_KEY = "dk-dev-embedded-only"


class Settings(BaseSettings):
    """Service configuration; empty environment means the embedded single-machine default."""

    model_config = SettingsConfigDict(env_prefix="DISTILLERY_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(Path("var"), description="Where the embedded default keeps its state.")
    database_url: str = Field("", description="SQLAlchemy URL; default: SQLite under data_dir.")
    broker_url: str = Field(
        "", description="Celery broker URL; default: a SQLite-backed broker under data_dir."
    )
    artifact_dir: Path | None = Field(
        None,
        description="The local artifact store's folder, when storage_url is empty; default: under data_dir.",
    )
    storage_url: str = Field(
        "",
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?)?$",
        description="s3://bucket/prefix: uploads, checkpoints, artifacts and teacher outputs in an "
        "S3-compatible store (endpoint, region, credentials: the AWS_* variables); empty: artifact_dir.",
    )
    storage_public_endpoint_url: str | None = Field(
        None, description="The store's address as clients reach it, for presigned URLs; default: the same."
    )
    storage_presigned_downloads: bool = Field(
        False, description="Artifact downloads answer 307 to a short-lived presigned URL of the object store."
    )
    storage_presign_seconds: int = Field(
        300, ge=1, le=7 * 24 * 3600, description="Lifetime of a presigned URL."
    )
    storage_retry_seconds: float = Field(
        120.0,
        ge=0,
        description="How long a worker retries a checkpoint or artifact write through a store outage before "
        "it queues the job again.",
    )
    storage_retry_attempts: int = Field(
        8,
        ge=1,
        le=50,
        description="Tries of one object-store request (with backoff) before it counts as an outage.",
    )
    work_dir: Path | None = Field(
        None,
        description="A worker's local scratch with a remote store: job folders and bounded copies of inputs, "
        "models and teacher outputs; default: under data_dir.",
    )
    teacher_cache_dir: Path | None = Field(
        None,
        description="Stored teacher outputs, shared by every worker; default: under the artifact store. "
        "With an object store: this worker's local copy; default: <work_dir>/teacher-cache.",
    )
    teacher_cache_max_bytes: int = Field(
        20 * 1024**3, ge=0, description="Bound on the stored teacher outputs; least recently used go first."
    )
    model_roots: list[Path | str] = Field(
        default_factory=list,
        description="Where models may be read from: local directories, or s3://bucket/prefix folders of an "
        "S3-compatible store (reached with the AWS_* variables).",
    )
    queue_name: str = "distillery.jobs"

    dev_api_key: str | None = Field(DEV_API_KEY, description="Accepted in development only.")
    max_upload_bytes: int = Field(512 * 1024 * 1024, gt=0)
    max_request_bytes: int = Field(1024 * 1024, gt=0, description="Largest body of any other request.")
    max_epochs: int = Field(100, ge=1)
    max_total_steps: int = Field(1_000_000, ge=1)
    max_attempts: int = Field(3, ge=1, description="Deliveries of one job before it fails for good.")
    max_job_devices: int = Field(8, ge=1, description="Most devices one job may ask for (resources.devices).")
    max_job_memory_gb: float = Field(
        1024.0, gt=0, description="Most memory per device one job may ask for (resources.min_memory_gb)."
    )

    executor: Literal["local", "ray"] = Field(
        "local",
        description="Where a job worker runs its jobs: local (its own process, or a torchrun group) or ray "
        "(each job handed to the Ray cluster at ray_address; set it on the API too, which checks nodes).",
    )
    ray_address: str = Field(
        "http://127.0.0.1:8265", description="The Ray cluster's dashboard (Jobs API) address, for ray."
    )
    ray_max_job_nodes: int = Field(
        4, ge=1, description="Most nodes one job may ask for (resources.nodes) with the ray executor."
    )

    worker_devices: int | None = Field(
        None,
        ge=1,
        description="Devices a job worker offers; default: its GPUs, or on the CPU, os.cpu_count().",
    )
    worker_accelerator: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="What a job worker offers; auto: cuda when nvidia-smi lists GPUs, else cpu."
    )
    scheduler_ageing_seconds: float = Field(
        3600.0, gt=0, description="A queued job counts one priority level higher per this long it waits."
    )
    scheduler_wake_jobs: int = Field(
        4, ge=1, description="Waiting jobs without a message that a job's end sends again, at most."
    )
    tenant_max_running_jobs: int | None = Field(
        None, ge=1, description="Most jobs one tenant runs at once (a key may set its own); None: no limit."
    )
    tenant_max_running_devices: int | None = Field(
        None, ge=1, description="Most devices one tenant's running jobs hold at once; None: no limit."
    )

    heartbeat_seconds: float = Field(10.0, gt=0)
    lease_seconds: float = Field(
        120.0, gt=0, description="A running job whose heartbeat is older is orphaned."
    )
    reconcile_seconds: float = Field(
        30.0, gt=0, description="How often queued and orphaned jobs are checked."
    )
    requeue_after_seconds: float = Field(
        300.0,
        gt=0,
        description="A queued job whose message a worker took but never ran (or, on a broker that "
        "cannot be inspected, any queued job) is re-sent this long after its last publish.",
    )
    republish_min_interval_seconds: float = Field(
        10.0, gt=0, description="A queued job is re-sent at most once per this interval."
    )
    republish_max_per_pass: int = Field(100, ge=1, description="Jobs one reconcile pass re-sends at most.")
    visibility_timeout_seconds: int = Field(7 * 24 * 3600, gt=0, description="Longer than any job.")
    database_timeout_seconds: float = Field(
        5.0, ge=1, description="Longest wait to connect to the database or for a pooled connection."
    )
    api_threads: int = Field(
        16,
        ge=1,
        le=1000,
        description="Threads of one API process that run handlers and database reads; its database pool "
        "holds as many connections, plus a few for session ends and probes, so a thread never waits for one.",
    )
    api_max_pending_requests: int = Field(
        2000,
        ge=1,
        description="Requests one API process holds waiting for their answer to start; beyond it, new ones "
        "get 503 `server_busy` with Retry-After. Open event streams are not counted once they started.",
    )
    database_retry_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a worker retries a database step a job needs before requeueing the job.",
    )

    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per log line, with the request id or the job id."
    )
    metrics_token: str | None = Field(
        None, description="When set, GET /metrics asks for `Authorization: Bearer <token>`; open otherwise."
    )
    events_retention_days: float | None = Field(
        None,
        gt=0,
        description="The reconciler deletes the events of jobs that ended longer ago than this; the jobs, "
        "their checkpoints and artifacts stay. None: events are kept for ever.",
    )
    event_stream_poll_seconds: float = Field(
        1.0, gt=0, description="How often an open event stream looks for new events."
    )
    event_stream_keep_alive_seconds: float = Field(
        15.0, gt=0, description="Seconds between the keep-alive comments of an event stream."
    )
    webhook_queue_name: str = "distillery.webhooks"
    webhook_max_attempts: int = Field(10, ge=1, le=50, description="Tries of one webhook delivery.")
    webhook_backoff_seconds: float = Field(
        10.0, gt=0, description="Wait before a delivery's second try; it doubles with each try, jittered."
    )
    webhook_backoff_max_seconds: float = Field(3600.0, gt=0, description="Longest wait between two tries.")
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Timeout of each phase (connect, send, read) of a call to a receiver."
    )
    webhook_deadline_seconds: float = Field(
        20.0,
        gt=0,
        le=300,
        description="Longest one try may take as a whole (resolving, connecting, TLS, sending, the answer),"
        " whatever the receiver does.",
    )
    webhook_senders: int = Field(8, ge=1, le=256, description="Deliveries one webhook worker sends at once.")
    webhook_endpoint_concurrency: int = Field(
        2, ge=1, le=100, description="Tries in flight to one endpoint at once, across every webhook worker."
    )
    webhook_circuit_failures: int = Field(
        5, ge=1, le=100, description="Failed tries in a row to one endpoint that open its circuit."
    )
    webhook_circuit_open_seconds: float = Field(
        60.0,
        gt=0,
        description="How long an open circuit postpones an endpoint's deliveries before one probe try.",
    )
    webhook_sweep_seconds: float = Field(
        15.0,
        gt=0,
        description="How often the webhook worker re-sends deliveries due this long that nobody sent.",
    )
    webhook_allow_http: bool = Field(False, description="Accept http:// receivers, not only https://.")
    webhook_allow_private_addresses: bool = Field(
        False, description="Accept receivers on loopback, private and link-local addresses."
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        self.data_dir = self.data_dir.resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'distillery.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.db'}"
        if self.artifact_dir is None:
            self.artifact_dir = self.data_dir / "artifacts"
        self.artifact_dir = self.artifact_dir.resolve()
        if self.work_dir is None:
            self.work_dir = self.data_dir / "work"
        self.work_dir = self.work_dir.resolve()
        if not self.model_roots:
            self.model_roots = [self.data_dir / "models"]
        self.model_roots = [root if is_s3_url(root) else Path(root).resolve() for root in self.model_roots]
        if self.environment == "production":
            if self.dev_api_key:
                raise ValueError("DISTILLERY_DEV_API_KEY must be empty in production; create keys instead")
            if self.database_url.startswith("sqlite") or self.broker_url.startswith("sqla+sqlite"):
                raise ValueError("production needs DISTILLERY_DATABASE_URL and DISTILLERY_BROKER_URL set")
        return self

    @property
    def teacher_cache(self) -> Path:
        """Where workers store teacher outputs."""
        return (self.teacher_cache_dir or self.artifacts / "teacher-cache").resolve()

    @property
    def artifacts(self) -> Path:
        """The artifact store's root directory."""
        assert self.artifact_dir is not None
        return self.artifact_dir

    @property
    def scratch(self) -> Path:
        """A worker's local scratch folder."""
        assert self.work_dir is not None
        return self.work_dir

    @property
    def has_remote_store(self) -> bool:
        """Whether artifacts live in an object store rather than a local folder."""
        return bool(self.storage_url)

    @property
    def is_embedded(self) -> bool:
        """Whether this runs on the single-machine default (SQLite and a serverless broker)."""
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process's settings, validated once."""
    return Settings()
