"""The Azaion data tree under ``AZAION_ROOT_DIR``.

    <root>/
      data/            validated annotations: images/ + labels/
      data-seed/       unvalidated annotations: images/ + labels/
      data_deleted/    soft-deleted annotations: images/ + labels/
      data-corrupted/  annotations that failed validation, with reasons/
      datasets/        formed training datasets: azaion-YYYY-MM-DD/
      models/          trained models: azaion-YYYY-MM-DD/, azaion.pt
      classes.json     annotation class definitions

Every stage addresses the tree through ``DataTree`` so the directory names come from settings in
exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.fsio.atomic import atomic_write_text
from azaion_assets.lib.labels.classes import default_classes_json

DATASET_PREFIX = "azaion-"


@dataclass(frozen=True)
class AnnotationDir:
    """A folder of annotations: ``images/{name}{ext}`` beside ``labels/{name}.txt``."""

    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def labels(self) -> Path:
        return self.root / "labels"

    def create(self) -> None:
        self.images.mkdir(parents=True, exist_ok=True)
        self.labels.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class DataTree:
    root: Path
    data: AnnotationDir
    seed: AnnotationDir
    deleted: AnnotationDir
    corrupted: AnnotationDir

    @classmethod
    def from_settings(cls, settings: Settings) -> DataTree:
        root = Path(settings.azaion_root_dir)
        return cls(
            root=root,
            data=AnnotationDir(root / settings.azaion_data_dir),
            seed=AnnotationDir(root / settings.azaion_data_seed_dir),
            deleted=AnnotationDir(root / settings.azaion_data_deleted_dir),
            corrupted=AnnotationDir(root / settings.azaion_data_corrupted_dir),
        )

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def classes_file(self) -> Path:
        return self.root / "classes.json"

    @property
    def champion(self) -> Path:
        return self.models / "azaion.pt"

    @property
    def champion_onnx(self) -> Path:
        return self.models / "azaion.onnx"

    def dataset_dir(self, partition: str) -> Path:
        return self.datasets / f"{DATASET_PREFIX}{partition}"

    def model_dir(self, partition: str) -> Path:
        return self.models / f"{DATASET_PREFIX}{partition}"

    def ensure(self) -> DataTree:
        """Create every directory and a default ``classes.json``; safe to call repeatedly."""
        for folder in (self.data, self.seed, self.deleted, self.corrupted):
            folder.create()
        self.datasets.mkdir(parents=True, exist_ok=True)
        self.models.mkdir(parents=True, exist_ok=True)
        if not self.classes_file.exists():
            atomic_write_text(self.classes_file, default_classes_json())
        return self
