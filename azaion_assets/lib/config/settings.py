"""The one configuration schema for azaion-assets.

Every variable of the original environment strategy is a field here, under its original name,
plus the few this project adds. Values are resolved in this order, highest first:

1. the process environment,
2. a ``.env`` file,
3. ``config.yaml`` (rendered from the two above by ``azaion-assets config render``),
4. the defaults below.

Secrets are ``SecretStr`` and have no defaults. A secret is only demanded by the part of the
pipeline that uses it (see ``Scope``), so a training-only machine needs no broker password, but
whoever asks for it gets an error that names the variable (``config_error``). What the loaded
values show outside (masked, rendered, missing per scope) is ``settings_views``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from azaion_assets.lib.config.config_error import ConfigError, describe_invalid
from azaion_assets.lib.config.fields import (
    AtLeastOne,
    AtLeastOneRatio,
    Count,
    Fraction,
    ImageSize,
    MoreThanZero,
    OpenFraction,
    PictureWidth,
    Scheme,
    Scope,
    TrainingStart,
    node_selector,
)
from azaion_assets.lib.config.fields import setting as _field
from azaion_assets.lib.config.source_chain import sources

# What one stream message may ask of the ingest (``stream.limits``): bytes are not work, so the
# image and the lists are bounded too.
# 4096x4096: a 4K frame (3840x2160, 8.3 MP) or a square 4K sensor, with margin; 48 MiB as RGB.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
DEFAULT_MAX_IMAGE_ASPECT = 8.0  # a 16:9 frame is 1.8; a strip of 8:1 is a letterboxed sliver
DEFAULT_MAX_BOXES = 1000  # a dense frame holds tens; Ultralytics keeps at most 300 detections
DEFAULT_MAX_BULK_NAMES = 10_000  # a day's validation by one person, in one message
# The work of judging one image that the JPEG walk does not judge (``image_judge``): a 4096x4096
# lossless WebP or PNG takes about 0.2 s and 130 MiB; a hostile one is cut off at these.
DEFAULT_IMAGE_SECONDS = 0.6
DEFAULT_IMAGE_MEMORY_MB = 160

DEFAULT_CONFIG_FILE = Path("config.yaml")
DEFAULT_ENV_FILE = Path(".env")


class Settings(BaseSettings):
    """Typed settings; field ``foo_bar`` is the variable ``FOO_BAR``."""

    model_config = SettingsConfigDict(
        alias_generator=str.upper,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
        env_file_encoding="utf-8",
        hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    # --- Azaion REST API (seed) ---
    azaion_api_url: str = _field("https://api.azaion.com", doc="Azaion REST API base URL")
    azaion_api_email: str | None = _field(doc="API login email", scopes=(Scope.RELEASE,))
    azaion_api_password: SecretStr | None = _field(
        doc="API login password", scopes=(Scope.RELEASE,), secret=True
    )

    # --- RabbitMQ stream (seed) ---
    rabbitmq_host: str = _field("127.0.0.1", doc="RabbitMQ host")
    rabbitmq_port: Count = _field(5552, doc="RabbitMQ Streams port")
    rabbitmq_user: str = _field("azaion_receiver", doc="RabbitMQ username")
    rabbitmq_password: SecretStr | None = _field(
        doc="RabbitMQ password", scopes=(Scope.STREAM,), secret=True
    )
    rabbitmq_queue_name: str = _field("azaion-annotations", doc="Stream (queue) name")

    # --- Data tree (seed) ---
    azaion_root_dir: Path = _field(Path("/azaion"), doc="Root data directory")
    azaion_data_dir: str = _field("data", doc="Validated annotations dir name")
    azaion_data_seed_dir: str = _field("data-seed", doc="Unvalidated annotations dir name")
    azaion_data_deleted_dir: str = _field("data_deleted", doc="Deleted annotations dir name")

    daily_partitions_start: date | None = _field(
        doc="First day of the dated partitions (dataset, model, ...), YYYY-MM-DD; unset: the "
        "first day this instance ingested or formed a dataset (read at location load)"
    )

    # --- Training and export (seed) ---
    training_model: str = _field(
        "yolo26m.pt",
        doc="Base model: a .pt file on disk (relative paths resolve under models/) "
        "or an architecture YAML shipped in Ultralytics, trained from scratch",
    )
    training_epochs: AtLeastOne = _field(120, doc="Training epochs")
    training_batch_size: AtLeastOne = _field(11, doc="Training batch size")
    training_imgsz: ImageSize = _field(1280, doc="Training image size (a multiple of 32)")
    training_save_period: int = _field(1, doc="Checkpoint save interval in epochs (-1 = off)")
    training_workers: Count = _field(24, doc="Dataloader workers")
    export_onnx_imgsz: ImageSize = _field(
        1280, doc="ONNX export image size (a multiple of 32); the gate scores at this size"
    )

    # --- Added by azaion-assets ---
    azaion_data_corrupted_dir: str = _field(
        "data-corrupted", doc="Where invalid annotations are moved, with their reason"
    )
    azaion_runtime_dir: Path | None = _field(
        doc="Writable runtime state (Ultralytics config, fonts, caches); default <root>/.runtime"
    )
    dataset_split: str = _field("70/20/10", doc="train/valid/test percentages, stable by name")
    training_device: str = _field(
        "auto", doc="auto (CUDA if present, else CPU), cpu, or CUDA ids such as 0 or 0,1"
    )
    training_seed: int = _field(0, doc="Random seed for training")
    training_amp: bool = _field(True, doc="Mixed precision on CUDA (no online AMP self-check)")
    training_plots: bool = _field(True, doc="Write Ultralytics training plots")
    training_optimizer: str = _field(
        "auto", doc="Ultralytics optimizer: auto, SGD, Adam, AdamW, ... (auto ignores LR0)"
    )
    training_lr0: float = _field(0.01, doc="Initial learning rate (unless optimizer is auto)")
    training_start: TrainingStart = _field(
        "base",
        doc="base: train TRAINING_MODEL for TRAINING_EPOCHS; champion: fine-tune models/azaion.pt "
        "for TRAINING_FINETUNE_EPOCHS, except for a full retraining from the base when "
        "TRAINING_FULL_EVERY says so, the class table changed or no champion can be read",
    )
    training_finetune_epochs: AtLeastOne = _field(
        30, doc="Epochs of a fine-tuning from the champion (TRAINING_START=champion)"
    )
    training_full_every: Count = _field(
        5,
        doc="With TRAINING_START=champion, every Nth training is a full retraining from the "
        "base; 1: every one, 0: only when the class table changed or no champion can be read",
    )
    stream_batch_messages: AtLeastOne = _field(
        1000,
        doc="Offsets per annotations partition (a partition holds at most this many messages; "
        "it is materialised again by each ingest run while it fills); an ingest run starts as "
        "soon as this many offsets are pending",
    )
    stream_max_delay_seconds: AtLeastOne = _field(
        60,
        doc="Longest a pending message waits before annotation_stream_sensor requests an ingest "
        "run for fewer than STREAM_BATCH_MESSAGES (it asks on the last tick before)",
    )
    stream_sensor_interval_seconds: AtLeastOne = _field(
        5,
        doc="How often annotation_stream_sensor looks for new offsets (read at location load)",
    )
    stream_sensor_max_partitions: AtLeastOne = _field(
        50, doc="Most partitions one ingest run covers; a larger backlog continues in the next run"
    )
    stream_start_offset: Count = _field(
        0, doc="Where the sensor starts on a fresh Dagster instance (earlier offsets are skipped)"
    )
    stream_max_message_bytes: AtLeastOne = _field(
        32 << 20, doc="Larger messages are quarantined as oversize"
    )
    stream_max_image_pixels: AtLeastOne = _field(
        DEFAULT_MAX_IMAGE_PIXELS,
        doc="Larger images are quarantined, judged from the header before decoding; the default, "
        "4096x4096, holds a 4K frame (3840x2160) with margin",
    )
    stream_max_image_aspect: AtLeastOneRatio = _field(
        DEFAULT_MAX_IMAGE_ASPECT,
        doc="Images whose long side exceeds this many times the short side are quarantined",
    )
    stream_max_boxes: AtLeastOne = _field(
        DEFAULT_MAX_BOXES,
        doc="An annotation with more boxes is quarantined, counted before they are decoded",
    )
    stream_max_bulk_names: AtLeastOne = _field(
        DEFAULT_MAX_BULK_NAMES, doc="A bulk Validated/Deleted naming more names is quarantined"
    )
    stream_image_seconds: MoreThanZero = _field(
        DEFAULT_IMAGE_SECONDS,
        doc="Most CPU time the ingest spends judging one image that is not a plain JPEG (decoded "
        "by the trainer's reader in a child process, cut off at 4 times this of wall time if "
        "it gets no CPU); one taking longer is quarantined",
    )
    stream_image_memory_mb: AtLeastOne = _field(
        DEFAULT_IMAGE_MEMORY_MB,
        doc="Most memory judging one such image may take (the decode estimated from its header, "
        "and a limit on the child process); an image needing more is quarantined",
    )
    stream_read_timeout_seconds: float = _field(
        10.0, doc="An ingest run fails (and retries) if the stream stalls this long"
    )
    retrain_min_new_validated: AtLeastOne = _field(
        100, doc="Validated annotations new since the last dataset that trigger a retraining"
    )
    retrain_sensor_interval_seconds: AtLeastOne = _field(
        60, doc="How often retraining_sensor evaluates the policy (read at location load)"
    )
    retrain_promotion_tolerance: Fraction = _field(
        0.005,
        doc="A new model replaces azaion.pt if its test mAP50-95 >= the champion's minus this",
    )
    retrain_min_test_map50_95: Fraction = _field(
        0.05,
        doc="Quality floor: a model whose shipped ONNX scores a lower test mAP50-95 is never "
        "promoted automatically, not even the first one",
    )
    retrain_degradation_margin: Fraction = _field(
        0.05,
        doc="Retrain when the champion's mAP50-95 on new data is this far below its test score",
    )
    retrain_degradation_min_images: AtLeastOne = _field(
        50, doc="The degradation rule needs a score on new data over at least this many images"
    )
    monitor_min_new_validated: AtLeastOne = _field(
        1000,
        doc="Validated annotations new since the champion's last score that trigger a new one "
        "(at 30,000 a day, a score about every 20 minutes of annotating)",
    )
    monitor_max_images_per_video: AtLeastOne = _field(
        20, doc="New images scored per source video, spread over it (one long video not to rule)"
    )
    monitor_max_images: AtLeastOne = _field(
        1000, doc="Most new images one champion_monitor run scores (videos taken in turn)"
    )
    monitor_sensor_interval_seconds: AtLeastOne = _field(
        120, doc="How often champion_monitor_sensor looks for new data (read at location load)"
    )
    pictures_gallery_size: Count = _field(
        8,
        doc="Frames in each gallery on an asset page (where models differ most, worst on new "
        "data); 0 shows charts only",
    )
    pictures_thumbnail_width: PictureWidth = _field(
        320, doc="Width in pixels of a frame drawn on an asset page (the report files too)"
    )
    pictures_every_minutes: Count = _field(
        60,
        doc="Assets materialised many times a day redraw their pictures at most this often: "
        "daily_arrivals (every ingest run) and champion_monitor (about 30 times a day at 30,000 "
        "annotations); in between, each names the run whose materialisation holds them. 0: "
        "every time. Materialising a day of daily_arrivals draws at once",
    )
    pictures_budget_bytes: Count = _field(
        1_000_000,
        doc="Most bytes of pictures one materialisation carries (a year of them stays in the "
        "Dagster instance); frames are made smaller, then left out, to fit. 0: no pictures, none "
        "drawn, neither on the pages nor in report/",
    )
    training_max_retries: Count = _field(
        2, doc="Retries of a failed training run; each resumes from the last checkpoint"
    )
    training_max_runtime_hours: MoreThanZero = _field(
        72,
        doc="A training run still going after this long is cancelled (it checkpoints) and "
        "retried, which resumes it; also frees the GPU from a run whose worker died unseen",
    )
    k8s_run_launcher: bool = _field(
        False,
        doc="true where the instance launches runs as Kubernetes Jobs (K8sRunLauncher, "
        "deploy/k8s): only then do training runs carry the dagster-k8s/config tag that asks "
        "for K8S_GPU_LIMIT and K8S_GPU_NODE_SELECTOR (read at location load)",
    )
    k8s_gpu_limit: Count = _field(
        1, doc="nvidia.com/gpu per training pod (with K8S_RUN_LAUNCHER=true)"
    )
    k8s_gpu_node_selector: str = _field(
        "nvidia.com/gpu.present=true",
        doc="Node selector of training pods: comma-separated key=value pairs "
        "(with K8S_RUN_LAUNCHER=true)",
    )
    model_encryption_key: SecretStr | None = _field(
        doc="Key string that encrypts released models (AES-256 key = its SHA-256); at least 16 "
        "characters, shared with the edge devices that decrypt",
        scopes=(Scope.RELEASE,),
        secret=True,
    )
    release_scheme: Scheme = _field(
        "aes-256-cbc",
        doc="Release encryption: aes-256-cbc (what existing Azaion consumers read) or "
        "aes-256-gcm (authenticated: tampering is detected)",
    )
    release_small_max_bytes: AtLeastOne = _field(
        3072, doc="The small part (to the API) is the first min(this, fraction) ciphertext bytes"
    )
    release_small_fraction: OpenFraction = _field(
        0.2, doc="The small part's share of the ciphertext when below RELEASE_SMALL_MAX_BYTES"
    )
    release_api_folder: str = _field("models", doc="API folder of small parts and the manifest")
    release_cdn_prefix: str = _field("models", doc="Key prefix of big parts in the CDN bucket")
    release_cdn_config_folder: str = _field(
        "config", doc="API folder of the encrypted cdn.yaml (the CDN credentials)"
    )
    release_sensor_interval_seconds: AtLeastOne = _field(
        30, doc="How often model_release_sensor looks for a new champion (read at location load)"
    )
    release_retry_minutes: MoreThanZero = _field(
        30, doc="A release that failed for good is requested again this long after the failure"
    )
    azaion_api_timeout_seconds: MoreThanZero = _field(
        30.0, doc="Timeout of one Azaion API request (connect and each read)"
    )
    azaion_api_retries: Count = _field(
        4, doc="Retries of an Azaion API request on 5xx or connection errors (backoff doubles)"
    )
    azaion_api_backoff_seconds: MoreThanZero = _field(
        1.0, doc="First retry delay of an Azaion API request; doubled each retry, at most 30 s"
    )
    health_stream_quiet_hours: MoreThanZero = _field(
        6.0,
        doc="The annotations_arriving check fails when no annotation partition landed for this "
        "long while the stream holds newer messages",
    )
    health_release_overdue_minutes: MoreThanZero = _field(
        60.0, doc="The champion_released check fails when a champion is unreleased this long"
    )
    keep_datasets_days: AtLeastOne = _field(
        30,
        doc="Datasets formed in this many days are kept; older ones only if a kept model was "
        "trained on them",
    )
    keep_models_days: AtLeastOne = _field(
        30,
        doc="Models trained in this many days are kept, besides the champion, the champions "
        "before it and what was released in that window",
    )
    keep_champions: Count = _field(
        3, doc="Champions before the live one whose models are kept, to roll back to"
    )
    keep_quarantine_days: AtLeastOne = _field(
        90,
        doc="Release parts of earlier champions and stream quarantine files older than this "
        "many days are removed",
    )
    housekeeping_dry_run: bool = _field(
        False, doc="Housekeeping plans and reports what it would remove, and removes nothing"
    )
    health_training_stale_days: MoreThanZero = _field(
        7.0, doc="The training_recent check fails when no model was trained for this long"
    )
    health_sensor_interval_seconds: AtLeastOne = _field(
        300, doc="How often health_sensor evaluates the health checks (read at location load)"
    )
    export_parity_images: Count = _field(8, doc="Validation images used for the ONNX parity check")
    export_parity_conf: float = _field(0.25, doc="Only boxes above this score are compared")
    export_parity_score_tol: float = _field(0.001, doc="Max score difference ONNX vs PyTorch")
    export_parity_iou: float = _field(0.9, doc="Min IoU for an ONNX box to match a PyTorch box")
    export_score_threshold: Fraction = _field(
        0.25, doc="Recommended score threshold written into the model card for the edge"
    )
    export_parity_min_boxes: Count = _field(
        10,
        doc="Fewer boxes above EXPORT_PARITY_CONF than this over all parity images: compare each "
        "image's top EXPORT_PARITY_TOP_K rows instead",
    )
    export_parity_top_k: AtLeastOne = _field(10, doc="Rows per image compared when few boxes clear")

    @field_validator("dataset_split")
    @classmethod
    def _split_sums_to_100(cls, value: str) -> str:
        parts = value.replace(",", "/").split("/")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise ValueError("must be three whole percentages such as 70/20/10")
        if sum(int(p) for p in parts) != 100:
            raise ValueError("percentages must add up to 100")
        return "/".join(p.strip() for p in parts)

    @field_validator("daily_partitions_start")
    @classmethod
    def _not_in_future(cls, value: date | None) -> date | None:
        if value is not None and value > datetime.now(UTC).date():
            raise ValueError("is in the future: today's partition would not exist")
        return value

    @field_validator("model_encryption_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and 0 < len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("k8s_gpu_node_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        node_selector(value)
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _remember_absent(cls, data: Any, handler: Any) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            given = (
                {str(k).lower() for k, v in data.items() if v not in (None, "")}
                if isinstance(data, dict)
                else set()
            )
            invalid = describe_invalid(exc)
            problems = [p for ps in invalid.values() for p in ps]
            raise ConfigError(problems, set(cls.model_fields) - given, invalid) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return sources(settings_cls, init_settings, env_settings, dotenv_settings)

    # --- derived values ---
    @property
    def split_percentages(self) -> tuple[int, int, int]:
        train, valid, test = (int(p) for p in self.dataset_split.split("/"))
        return train, valid, test

    @property
    def runtime_dir(self) -> Path:
        return self.azaion_runtime_dir or self.azaion_root_dir / ".runtime"

    def require(self, name: str) -> Any:
        """Return a scoped value that must be set, or raise ``ConfigError`` naming the variable."""
        value = getattr(self, name.lower())
        if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
            raise ConfigError([f"{name.upper()} is not set"])
        return value.get_secret_value() if isinstance(value, SecretStr) else value
