"""lfkit.registry: validated dataset_info.json entries (see DESIGN.md for what this module owns)."""

from lfkit.registry.core import (
    KIND_COLUMNS,
    KINDS,
    STANDARD_DATASETS,
    DatasetKind,
    Registration,
    RegistryError,
    backup_file,
    entry_for,
    entry_schema,
    locked_dataset_info,
    register,
    register_dataset,
    standard_entries,
    validate_data_file,
    validate_entry,
)

__all__ = [
    "KINDS",
    "KIND_COLUMNS",
    "STANDARD_DATASETS",
    "DatasetKind",
    "Registration",
    "RegistryError",
    "backup_file",
    "entry_for",
    "entry_schema",
    "locked_dataset_info",
    "register",
    "register_dataset",
    "standard_entries",
    "validate_data_file",
    "validate_entry",
]
