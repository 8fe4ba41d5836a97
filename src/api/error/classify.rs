//! The status table: which HTTP status, code and title each failure kind gets. One
//! exhaustive `match` (no catch-all arm), kept apart from the response plumbing in `error.rs`
//! so the whole mapping reads in one place.

use actix_web::http::StatusCode;

use std::io::ErrorKind;

use super::ApiError;
use crate::store::{
    FeastImportError, NameKind, Referrers, RegistryError, StorageError, StoreError,
};

impl ApiError {
    /// Status, code and title; exhaustive over every failure kind.
    pub(super) fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::Store(e) => match e {
                StoreError::Storage(e) => match e {
                    StorageError::TableNotFound { .. } => {
                        (S::NOT_FOUND, "table_not_found", "Table not found")
                    }
                    StorageError::VersionNotFound { .. } => (
                        S::NOT_FOUND,
                        "table_version_not_found",
                        "Table version not found",
                    ),
                    StorageError::VersionExpired { .. } => (
                        S::GONE,
                        "table_version_expired",
                        "Table version no longer retained",
                    ),
                    StorageError::NameInOtherGroup { .. } => (
                        S::CONFLICT,
                        "table_name_conflict",
                        "Table name used in another group",
                    ),
                    StorageError::DuplicateTable { .. } => (
                        S::CONFLICT,
                        "duplicate_table",
                        "Table name found in two groups",
                    ),
                    StorageError::InvalidRecords { .. } => (
                        S::UNPROCESSABLE_ENTITY,
                        "invalid_records",
                        "Records cannot form a table",
                    ),
                    StorageError::UnknownColumns { .. } => {
                        (S::BAD_REQUEST, "unknown_column", "Unknown column")
                    }
                    StorageError::Io { source, .. } => match source.kind() {
                        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => (
                            S::INSUFFICIENT_STORAGE,
                            "storage_full",
                            "No space left for the data",
                        ),
                        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => (
                            S::SERVICE_UNAVAILABLE,
                            "data_root_not_writable",
                            "Data root not writable",
                        ),
                        _ => (
                            S::INTERNAL_SERVER_ERROR,
                            "storage_io_error",
                            "Storage I/O error",
                        ),
                    },
                    StorageError::Parquet { .. } => (
                        S::INTERNAL_SERVER_ERROR,
                        "table_unreadable",
                        "Table file unreadable",
                    ),
                    StorageError::FileChanged { .. } => (
                        S::SERVICE_UNAVAILABLE,
                        "table_file_changing",
                        "Table file being rewritten",
                    ),
                    StorageError::Unavailable { .. } => (
                        S::SERVICE_UNAVAILABLE,
                        "storage_unavailable",
                        "Object store unavailable",
                    ),
                    StorageError::CommitContended { .. } => (
                        S::SERVICE_UNAVAILABLE,
                        "storage_contended",
                        "Table busy with other writers",
                    ),
                    StorageError::Arrow(_) => {
                        (S::INTERNAL_SERVER_ERROR, "internal_error", "Internal error")
                    }
                    StorageError::Metadata { .. } => (
                        S::INTERNAL_SERVER_ERROR,
                        "table_metadata_unreadable",
                        "Table metadata unreadable",
                    ),
                },
                StoreError::UnknownTables(_) => (
                    S::NOT_FOUND,
                    "unknown_feature_tables",
                    "Unknown feature tables",
                ),
                StoreError::NoEntityKey { .. } => (
                    S::UNPROCESSABLE_ENTITY,
                    "no_entity_key",
                    "Table has no entity key",
                ),
                StoreError::CompositeEntityKey { .. } => (
                    S::UNPROCESSABLE_ENTITY,
                    "composite_entity_key",
                    "Table has a composite entity key",
                ),
                StoreError::NoTimestampField { .. } => (
                    S::UNPROCESSABLE_ENTITY,
                    "no_timestamp_field",
                    "Table has no timestamp field",
                ),
                StoreError::ResultTooLarge { .. } => {
                    (S::PAYLOAD_TOO_LARGE, "result_too_large", "Result too large")
                }
                StoreError::Registry(e) => match e {
                    RegistryError::Invalid(_) => (
                        S::UNPROCESSABLE_ENTITY,
                        "invalid_definitions",
                        "Invalid registry definitions",
                    ),
                    RegistryError::NotFound { .. } => {
                        (S::NOT_FOUND, "registry_object_not_found", "Not registered")
                    }
                    RegistryError::InUse { by, .. } => match by {
                        Referrers::FeatureViews => (
                            S::CONFLICT,
                            "referenced_by_feature_views",
                            "Still used by feature views",
                        ),
                        Referrers::FeatureServices => (
                            S::CONFLICT,
                            "referenced_by_feature_services",
                            "Still used by feature services",
                        ),
                    },
                    RegistryError::Changed { .. } => (
                        S::CONFLICT,
                        "registry_changed",
                        "Registry changed since it was read",
                    ),
                    RegistryError::Conflict { .. } => (
                        S::CONFLICT,
                        "registry_conflict",
                        "Registry object defined concurrently",
                    ),
                    RegistryError::File { .. } => (
                        S::INTERNAL_SERVER_ERROR,
                        "registry_unreadable",
                        "Registry file unreadable",
                    ),
                    RegistryError::Unavailable { .. } => (
                        S::SERVICE_UNAVAILABLE,
                        "storage_unavailable",
                        "Object store unavailable",
                    ),
                    RegistryError::Contended { .. } => (
                        S::SERVICE_UNAVAILABLE,
                        "registry_contended",
                        "Registry busy with other writers",
                    ),
                    RegistryError::VersionNotFound { .. } => (
                        S::NOT_FOUND,
                        "registry_version_not_found",
                        "Registry version not found",
                    ),
                    RegistryError::VersionExpired { .. } => (
                        S::GONE,
                        "registry_version_expired",
                        "Registry version no longer retained",
                    ),
                },
                StoreError::UnknownNames { kind, .. } => match kind {
                    NameKind::FeatureView => (
                        S::NOT_FOUND,
                        "unknown_feature_views",
                        "Unknown feature views",
                    ),
                    NameKind::Feature => (S::NOT_FOUND, "unknown_features", "Unknown features"),
                    NameKind::FeatureService => (
                        S::NOT_FOUND,
                        "unknown_feature_service",
                        "Unknown feature service",
                    ),
                    NameKind::PushSource => {
                        (S::NOT_FOUND, "unknown_push_source", "Unknown push source")
                    }
                },
                StoreError::UnrequestedPins { .. } => (
                    S::BAD_REQUEST,
                    "unknown_pinned_views",
                    "Pinned view not requested",
                ),
                StoreError::ViewTableMismatch { .. } => (
                    S::CONFLICT,
                    "view_table_mismatch",
                    "Feature view and table disagree",
                ),
                StoreError::InvalidRequest { .. } => (
                    S::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    "Invalid request body",
                ),
                StoreError::StatsDisabled => {
                    (S::NOT_FOUND, "stats_disabled", "Statistics turned off")
                }
                StoreError::NoPreviousVersion { .. } => (
                    S::CONFLICT,
                    "no_previous_version",
                    "No earlier version to compare with",
                ),
                StoreError::FeastImport(e) => match e {
                    FeastImportError::Malformed(_) => (
                        S::UNPROCESSABLE_ENTITY,
                        "invalid_feast_registry",
                        "Not a Feast registry dump",
                    ),
                    // Only the command line reads data files; kept apart so its code says
                    // which file failed rather than that the dump is wrong.
                    FeastImportError::DataFile { .. } => (
                        S::UNPROCESSABLE_ENTITY,
                        "feast_data_file_unreadable",
                        "Feast data file unreadable",
                    ),
                },
                StoreError::Task(_) => {
                    (S::INTERNAL_SERVER_ERROR, "internal_error", "Internal error")
                }
                StoreError::OnlineStoreUnavailable(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "online_store_unavailable",
                    "Online store unavailable",
                ),
            },
            ApiError::InvalidName { .. } => (S::BAD_REQUEST, "invalid_name", "Invalid name"),
            ApiError::InvalidParameter { .. } => (
                S::BAD_REQUEST,
                "invalid_parameter",
                "Invalid query parameter",
            ),
            ApiError::UnknownQueryParameters { .. } => (
                S::BAD_REQUEST,
                "unknown_query_parameter",
                "Unknown query parameter",
            ),
            ApiError::ConflictingParameters { .. } => (
                S::BAD_REQUEST,
                "conflicting_parameters",
                "Conflicting query parameters",
            ),
            ApiError::MalformedJson(_) => (S::BAD_REQUEST, "malformed_json", "Malformed JSON"),
            ApiError::InvalidBody { .. } => (
                S::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "Invalid request body",
            ),
            ApiError::UnsupportedUpload(_) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ApiError::ResultTooLarge { .. } => {
                (S::PAYLOAD_TOO_LARGE, "result_too_large", "Result too large")
            }
            ApiError::Encoding(_) => (S::INTERNAL_SERVER_ERROR, "internal_error", "Internal error"),
            ApiError::UnsupportedMediaType(_) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge { .. } => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request body too large",
            ),
            ApiError::RouteNotFound { .. } => (S::NOT_FOUND, "route_not_found", "Route not found"),
            ApiError::MethodNotAllowed { .. } => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::Unauthorized(_) => {
                (S::UNAUTHORIZED, "unauthorized", "Authentication required")
            }
            ApiError::Forbidden { .. } => (S::FORBIDDEN, "forbidden", "Insufficient scope"),
        }
    }
}
