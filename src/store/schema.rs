//! The schema version and its migrations, as data. The IndexedDB store runs them in
//! `onupgradeneeded` (create the object stores and indexes, then rewrite records with cursors
//! inside the upgrade transaction, so a failure leaves the database as it was); `DirStore`
//! refuses a newer manifest than it knows.
//!
//! Records move between versions as `serde_json::Value`, so a rewrite never needs the old Rust
//! types. Only metadata fields are touched; byte fields pass through unchanged.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::dataset::Change;
use super::detached::ActiveModelEntry;
use super::{
    Checkpoint, ImageRole, Keyed, ModelSummary, Profile, Query, Record, Settings, StoreError,
    StoredImage, StoredModel, TrainingRun,
};

/// Version of the stored records' shapes (the IndexedDB database version).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SchemaVersion(pub u32);

/// The schema this build reads and writes. The first layout that shipped is numbered 2 (a
/// draft numbered 1 never reached a user), so databases made since open without an upgrade.
pub const SCHEMA_VERSION: SchemaVersion = SchemaVersion(2);

/// A schema: its version and the migrations that reach it from an empty database.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub version: SchemaVersion,
    pub migrations: &'static [Migration],
}

/// What this build stores.
pub const SCHEMA: Schema = Schema {
    version: SCHEMA_VERSION,
    migrations: MIGRATIONS,
};

/// Object store names (IndexedDB) and record groups (`DirStore`'s manifest).
pub mod object_store {
    pub const PROFILES: &str = "profiles";
    pub const IMAGES: &str = "images";
    pub const MODELS: &str = "models";
    /// `{ profile_id, model_id }`, keyed by `profile_id`.
    pub const ACTIVE_MODELS: &str = "active_models";
    /// `Checkpoint`, keyed by `profile_id` (one per profile).
    pub const CHECKPOINTS: &str = "checkpoints";
    /// `TrainingRun`, keyed by `id`.
    pub const RUNS: &str = "runs";
    /// One `Settings` record under the out-of-line key `SETTINGS_KEY`.
    pub const SETTINGS: &str = "settings";

    /// Every object store; a write transaction opens all of them, so that it can touch any
    /// record kind (a profile's deletion reaches all of them).
    pub const ALL: [&str; 7] = [
        PROFILES,
        IMAGES,
        MODELS,
        ACTIVE_MODELS,
        CHECKPOINTS,
        RUNS,
        SETTINGS,
    ];
}

/// The key of the single settings record.
pub const SETTINGS_KEY: &str = "settings";

/// Index of images, models and runs by `profile_id`.
pub const BY_PROFILE: &str = "by_profile";
/// Index of images by `[profile_id, role]`.
pub const BY_PROFILE_ROLE: &str = "by_profile_role";

/// One step of a migration.
#[derive(Debug, Clone, Copy)]
pub enum MigrationAction {
    /// Create an object store; `key_path: None` means out-of-line keys.
    CreateObjectStore {
        store: &'static str,
        key_path: Option<&'static str>,
    },
    /// Create an index.
    CreateIndex(IndexSpec),
    /// Rewrite every record of a store.
    RewriteRecords {
        store: &'static str,
        rewrite: fn(Value) -> Result<Value, String>,
    },
}

/// An index of an object store; a compound index when `key_path` has several fields.
#[derive(Debug, Clone, Copy)]
pub struct IndexSpec {
    pub store: &'static str,
    pub index: &'static str,
    pub key_path: &'static [&'static str],
    pub unique: bool,
}

/// The steps from one version to the next.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub from: SchemaVersion,
    pub to: SchemaVersion,
    pub description: &'static str,
    pub actions: &'static [MigrationAction],
}

use MigrationAction::*;
use object_store::*;

/// Every migration, in order. A fresh database runs all of them from version 0.
pub const MIGRATIONS: &[Migration] = &[Migration {
    from: SchemaVersion(0),
    to: SchemaVersion(2),
    description: "profiles, images, models, active-model pointers, checkpoints, runs, settings",
    actions: &[
        CreateObjectStore {
            store: PROFILES,
            key_path: Some("id"),
        },
        CreateObjectStore {
            store: IMAGES,
            key_path: Some("id"),
        },
        CreateIndex(IndexSpec {
            store: IMAGES,
            index: BY_PROFILE,
            key_path: &["profile_id"],
            unique: false,
        }),
        CreateIndex(IndexSpec {
            store: IMAGES,
            index: BY_PROFILE_ROLE,
            key_path: &["profile_id", "role"],
            unique: false,
        }),
        CreateObjectStore {
            store: MODELS,
            key_path: Some("id"),
        },
        CreateIndex(IndexSpec {
            store: MODELS,
            index: BY_PROFILE,
            key_path: &["profile_id"],
            unique: false,
        }),
        CreateObjectStore {
            store: ACTIVE_MODELS,
            key_path: Some("profile_id"),
        },
        CreateObjectStore {
            store: CHECKPOINTS,
            key_path: Some("profile_id"),
        },
        CreateObjectStore {
            store: RUNS,
            key_path: Some("id"),
        },
        CreateIndex(IndexSpec {
            store: RUNS,
            index: BY_PROFILE,
            key_path: &["profile_id"],
            unique: false,
        }),
        CreateObjectStore {
            store: SETTINGS,
            key_path: None,
        },
    ],
}];

impl Schema {
    /// The migrations that take a database at `from` to this schema, in order.
    pub fn migrations_from(
        &self,
        from: SchemaVersion,
    ) -> Result<Vec<&'static Migration>, StoreError> {
        if from > self.version {
            return Err(StoreError::SchemaTooNew {
                found: from.0,
                supported: self.version.0,
            });
        }
        Ok(self
            .migrations
            .iter()
            .filter(|m| m.from >= from && m.to <= self.version)
            .collect())
    }
}

/// What a migration's actions run on: the database's upgrade (IndexedDB's
/// `onupgradeneeded`). Each failure is a sentence for `StoreError::MigrationFailed`.
#[allow(async_fn_in_trait)]
pub trait Upgrade {
    fn create_object_store(&self, store: &str, key_path: Option<&str>) -> Result<(), String>;
    fn create_index(&self, index: &IndexSpec) -> Result<(), String>;
    /// Rewrites every record of `store`; byte fields pass through unchanged.
    async fn rewrite_records(
        &self,
        store: &str,
        rewrite: fn(Value) -> Result<Value, String>,
    ) -> Result<(), String>;
}

impl Schema {
    /// Runs the migrations from `from` up to this schema on `upgrade`, stopping at the first
    /// failure.
    pub async fn upgrade(
        &self,
        from: SchemaVersion,
        upgrade: &impl Upgrade,
    ) -> Result<(), StoreError> {
        for migration in self.migrations_from(from)? {
            for action in migration.actions {
                let done = match *action {
                    CreateObjectStore { store, key_path } => upgrade
                        .create_object_store(store, key_path)
                        .map_err(|e| format!("creating '{store}': {e}")),
                    CreateIndex(ref spec) => upgrade.create_index(spec).map_err(|e| {
                        format!("creating index '{}' on '{}': {e}", spec.index, spec.store)
                    }),
                    RewriteRecords { store, rewrite } => (upgrade.rewrite_records(store, rewrite))
                        .await
                        .map_err(|e| format!("{store}: {e}")),
                };
                done.map_err(|detail| StoreError::MigrationFailed {
                    from: migration.from.0,
                    to: migration.to.0,
                    detail,
                })?;
            }
        }
        Ok(())
    }
}

/// A record as an object store holds it, borrowed from the change that writes it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum StoredRecord<'a> {
    Profile(&'a Profile),
    Image(&'a StoredImage),
    Model(&'a StoredModel),
    ActiveModel(ActiveModelEntry),
    Checkpoint(&'a Checkpoint),
    Run(&'a TrainingRun),
    Settings(&'a Settings),
}

/// One request of a write transaction on a store with one object store per record kind.
#[derive(Debug)]
pub enum StoreWrite<'a> {
    Put {
        store: &'static str,
        record: StoredRecord<'a>,
        /// Out-of-line key (settings only); the others carry their key in the record.
        key: Option<&'static str>,
        /// What it is and its id, for a message when the record cannot be stored.
        kind: &'static str,
        id: &'a str,
    },
    Delete {
        store: &'static str,
        key: &'a str,
    },
    Clear {
        store: &'static str,
    },
}

impl Change {
    /// The requests that apply this change.
    pub fn writes(&self) -> Vec<StoreWrite<'_>> {
        use StoredRecord as R;
        fn put<'a, T: Keyed>(store: &'static str, record: R<'a>, of: &'a T) -> StoreWrite<'a> {
            StoreWrite::Put {
                store,
                record,
                key: None,
                kind: T::KIND,
                id: of.key(),
            }
        }
        let delete = |store, key| StoreWrite::Delete { store, key };
        vec![match self {
            Change::ClearAll => return ALL.map(|store| StoreWrite::Clear { store }).into(),
            Change::PutProfile(p) => put(PROFILES, R::Profile(p), p),
            Change::DeleteProfile(id) => delete(PROFILES, id),
            Change::PutImage(i) => put(IMAGES, R::Image(i), i),
            Change::DeleteImage(id) => delete(IMAGES, id),
            Change::PutModel(m) => put(MODELS, R::Model(m), m),
            Change::DeleteModel(id) => delete(MODELS, id),
            Change::SetActiveModel {
                profile_id,
                model_id,
            } => {
                let pointer = ActiveModelEntry {
                    profile_id: profile_id.clone(),
                    model_id: model_id.clone(),
                };
                StoreWrite::Put {
                    store: ACTIVE_MODELS,
                    record: R::ActiveModel(pointer),
                    key: None,
                    kind: "active model",
                    id: model_id,
                }
            }
            Change::ClearActiveModel(profile) => delete(ACTIVE_MODELS, profile),
            Change::PutCheckpoint(c) => put(CHECKPOINTS, R::Checkpoint(c), c),
            Change::DeleteCheckpoint(profile) => delete(CHECKPOINTS, profile),
            Change::PutRun(r) => put(RUNS, R::Run(r), r),
            Change::DeleteRun(id) => delete(RUNS, id),
            Change::PutSettings(s) => StoreWrite::Put {
                store: SETTINGS,
                record: R::Settings(s),
                key: Some(SETTINGS_KEY),
                kind: "settings",
                id: SETTINGS_KEY,
            },
        }]
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

/// What a stored record decodes as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Profile,
    Image,
    Model,
    /// A model record read without its weights: its metadata, and a `byte_len` the backend
    /// fills in from the weights it leaves unread.
    ModelSummary,
    ActiveModel,
    Checkpoint,
    Run,
    Settings,
}

impl RecordKind {
    /// Decodes one stored record of this kind.
    pub fn decode<'de, D: Deserializer<'de>>(self, record: D) -> Result<Record, D::Error> {
        Ok(match self {
            Self::Profile => Record::Profile(Deserialize::deserialize(record)?),
            Self::Image => Record::Image(Deserialize::deserialize(record)?),
            Self::Model => Record::Model(Deserialize::deserialize(record)?),
            Self::ModelSummary => Record::ModelSummary(ModelSummary {
                meta: Deserialize::deserialize(record)?,
                byte_len: 0,
            }),
            Self::ActiveModel => Record::from_pointer(Deserialize::deserialize(record)?),
            Self::Checkpoint => Record::Checkpoint(Deserialize::deserialize(record)?),
            Self::Run => Record::Run(Deserialize::deserialize(record)?),
            Self::Settings => Record::Settings(Deserialize::deserialize(record)?),
        })
    }
}

/// The key an index maps to records: a single field's value, or a compound index's array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum IndexKey<'a> {
    /// `BY_PROFILE`.
    Profile(&'a str),
    /// `BY_PROFILE_ROLE`.
    ProfileRole(&'a str, ImageRole),
}

/// Which records of an object store one read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select<'a> {
    /// The record under this key, if any.
    Key(&'a str),
    /// Every record.
    All,
    /// The records that this index maps the key to.
    Index(&'static str, IndexKey<'a>),
}

/// One read of an object store, and what its records decode as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup<'a> {
    pub store: &'static str,
    pub select: Select<'a>,
    pub kind: RecordKind,
}

impl<'a> Lookup<'a> {
    pub fn new(store: &'static str, select: Select<'a>, kind: RecordKind) -> Self {
        Lookup {
            store,
            select,
            kind,
        }
    }

    fn by_profile(store: &'static str, profile: &'a str, kind: RecordKind) -> Self {
        Lookup::new(
            store,
            Select::Index(BY_PROFILE, IndexKey::Profile(profile)),
            kind,
        )
    }

    fn model(id: &'a str) -> Self {
        Lookup::new(MODELS, Select::Key(id), RecordKind::Model)
    }

    /// Profiles, active-model pointers, runs and settings: the records without payloads.
    pub fn small_records() -> [Lookup<'static>; 4] {
        [
            Lookup::new(PROFILES, Select::All, RecordKind::Profile),
            Lookup::new(ACTIVE_MODELS, Select::All, RecordKind::ActiveModel),
            Lookup::new(RUNS, Select::All, RecordKind::Run),
            Lookup::new(SETTINGS, Select::Key(SETTINGS_KEY), RecordKind::Settings),
        ]
    }
}

impl<'a> Query<'a> {
    /// The reads that answer this query on a store laid out by this schema. For
    /// `ActiveModel` they read the pointer; [`Query::next_lookup`] then reads the model it
    /// names, in the same transaction.
    pub fn lookups(self) -> Vec<Lookup<'a>> {
        use RecordKind as K;
        let key = |store, key, kind| vec![Lookup::new(store, Select::Key(key), kind)];
        match self {
            Query::Profiles => vec![Lookup::new(PROFILES, Select::All, K::Profile)],
            Query::Image(id) => key(IMAGES, id, K::Image),
            Query::Images {
                profile,
                role: Some(role),
            } => {
                let by_role = IndexKey::ProfileRole(profile, role);
                vec![Lookup::new(
                    IMAGES,
                    Select::Index(BY_PROFILE_ROLE, by_role),
                    K::Image,
                )]
            }
            Query::Images { profile, .. } => vec![Lookup::by_profile(IMAGES, profile, K::Image)],
            Query::ModelSummaries(profile) => {
                vec![Lookup::by_profile(MODELS, profile, K::ModelSummary)]
            }
            Query::ActiveModelId(profile) | Query::ActiveModel(profile) => {
                key(ACTIVE_MODELS, profile, K::ActiveModel)
            }
            Query::Checkpoint(profile) => key(CHECKPOINTS, profile, K::Checkpoint),
            Query::Run(id) => key(RUNS, id, K::Run),
            Query::Runs(profile) => vec![Lookup::by_profile(RUNS, profile, K::Run)],
            Query::Settings => key(SETTINGS, SETTINGS_KEY, K::Settings),
            Query::Everything => {
                let mut lookups = Lookup::small_records().to_vec();
                lookups.extend([
                    Lookup::new(IMAGES, Select::All, K::Image),
                    Lookup::new(MODELS, Select::All, K::Model),
                    Lookup::new(CHECKPOINTS, Select::All, K::Checkpoint),
                ]);
                lookups
            }
        }
    }

    /// The read that follows the lookups, given what they returned: the model that an
    /// active-model pointer names.
    pub fn next_lookup<'r>(self, records: &'r [Record]) -> Option<Lookup<'r>> {
        match (self, records.first()) {
            (Query::ActiveModel(_), Some(Record::ActiveModel { model_id, .. })) => {
                Some(Lookup::model(model_id))
            }
            _ => None,
        }
    }

    /// The object stores a read transaction for this query opens.
    pub fn object_stores(self) -> Vec<&'static str> {
        let mut stores: Vec<&str> = self.lookups().iter().map(|l| l.store).collect();
        if let Query::ActiveModel(_) = self {
            stores.push(MODELS);
        }
        stores.sort_unstable();
        stores.dedup();
        stores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_chain_without_gaps_up_to_the_current_version() {
        let mut version = SchemaVersion(0);
        for m in MIGRATIONS {
            assert_eq!(m.from, version);
            assert!(m.to > m.from);
            version = m.to;
        }
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_database_at_the_current_version_needs_no_migration() {
        assert!(SCHEMA.migrations_from(SCHEMA_VERSION).unwrap().is_empty());
        assert_eq!(SCHEMA.migrations_from(SchemaVersion(0)).unwrap().len(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let err = SCHEMA.migrations_from(SchemaVersion(3)).unwrap_err();
        assert_eq!(
            err,
            StoreError::SchemaTooNew {
                found: 3,
                supported: 2
            }
        );
    }
}
