//! The schema version and its migrations, as data. `DirStore` runs them when it opens an older
//! layout; the IndexedDB implementation runs the same steps in `onupgradeneeded` (create the
//! object stores and indexes, then rewrite records with cursors inside the upgrade
//! transaction), so both storages agree on what "version 2" means.
//!
//! Records move between versions as `serde_json::Value`, so a rewrite never needs the old Rust
//! types. Only metadata fields are touched; byte fields pass through unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::StoreError;
use super::dataset::StoreContents;
use super::types::{Checkpoint, Profile, Settings, StoredImage, StoredModel, TrainingRun};

/// Version of the stored records' shapes (the IndexedDB database version).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SchemaVersion(pub u32);

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: SchemaVersion = SchemaVersion(2);

/// Object store names (IndexedDB) and record groups (`DirStore`, `RawDatabase`).
pub mod object_store {
    pub const PROFILES: &str = "profiles";
    pub const IMAGES: &str = "images";
    pub const MODELS: &str = "models";
    /// `{ profile_id, model_id }`, keyed by `profile_id`. Added in version 2.
    pub const ACTIVE_MODELS: &str = "active_models";
    /// `Checkpoint`, keyed by `profile_id` (one per profile). Added in version 2.
    pub const CHECKPOINTS: &str = "checkpoints";
    /// `TrainingRun`, keyed by `id`. Added in version 2.
    pub const RUNS: &str = "runs";
    /// One `Settings` record under the out-of-line key `SETTINGS_KEY`.
    pub const SETTINGS: &str = "settings";
}

/// The key of the single settings record.
pub const SETTINGS_KEY: &str = "settings";

/// One step of a migration.
#[derive(Debug, Clone, Copy)]
pub enum MigrationAction {
    /// Create an object store; `key_path: None` means out-of-line keys.
    CreateObjectStore {
        store: &'static str,
        key_path: Option<&'static str>,
    },
    /// Create an index; a compound index when `key_path` has several fields.
    CreateIndex {
        store: &'static str,
        index: &'static str,
        key_path: &'static [&'static str],
        unique: bool,
    },
    /// Version 1 marked the active model with `active: true` on the model record; write an
    /// `active_models` pointer for each such model. Runs before the rewrite that drops the flag.
    DeriveActiveModelPointers,
    /// Rewrite every record of a store.
    RewriteRecords {
        store: &'static str,
        rewrite: fn(Value) -> Result<Value, String>,
    },
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
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: SchemaVersion(0),
        to: SchemaVersion(1),
        description: "profiles, images, models and settings",
        actions: &[
            CreateObjectStore {
                store: PROFILES,
                key_path: Some("id"),
            },
            CreateObjectStore {
                store: IMAGES,
                key_path: Some("id"),
            },
            CreateIndex {
                store: IMAGES,
                index: "by_profile",
                key_path: &["profile_id"],
                unique: false,
            },
            CreateObjectStore {
                store: MODELS,
                key_path: Some("id"),
            },
            CreateIndex {
                store: MODELS,
                index: "by_profile",
                key_path: &["profile_id"],
                unique: false,
            },
            CreateObjectStore {
                store: SETTINGS,
                key_path: None,
            },
        ],
    },
    Migration {
        from: SchemaVersion(1),
        to: SchemaVersion(2),
        description: "image roles and sources, active-model pointers, checkpoints, runs, \
                      backend and mode settings",
        actions: &[
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
            CreateIndex {
                store: RUNS,
                index: "by_profile",
                key_path: &["profile_id"],
                unique: false,
            },
            CreateIndex {
                store: IMAGES,
                index: "by_profile_role",
                key_path: &["profile_id", "role"],
                unique: false,
            },
            DeriveActiveModelPointers,
            RewriteRecords {
                store: IMAGES,
                rewrite: image_v1_to_v2,
            },
            RewriteRecords {
                store: MODELS,
                rewrite: model_v1_to_v2,
            },
            RewriteRecords {
                store: SETTINGS,
                rewrite: settings_v1_to_v2,
            },
        ],
    },
];

/// The migrations that take data from `from` to `to`, in order.
pub fn migrations_between(
    from: SchemaVersion,
    to: SchemaVersion,
) -> Result<Vec<&'static Migration>, StoreError> {
    if from > SCHEMA_VERSION || to > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: from.0.max(to.0),
            supported: SCHEMA_VERSION.0,
        });
    }
    if from > to {
        return Err(StoreError::MigrationFailed {
            from: from.0,
            to: to.0,
            detail: "downgrades are not supported".into(),
        });
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| m.from >= from && m.to <= to)
        .collect())
}

/// Version 1 called the role `kind` and only captured from the camera.
fn image_v1_to_v2(mut record: Value) -> Result<Value, String> {
    let object = record
        .as_object_mut()
        .ok_or("an image record is not an object")?;
    let kind = object
        .remove("kind")
        .ok_or("an image record has no 'kind'")?;
    object.insert("role".into(), kind);
    object.entry("source").or_insert_with(|| json!("camera"));
    Ok(record)
}

/// Version 1 called the tower `tower`, had no format version (its files are version 1) and
/// flagged the active model on the record (moved to `active_models`).
fn model_v1_to_v2(mut record: Value) -> Result<Value, String> {
    let object = record
        .as_object_mut()
        .ok_or("a model record is not an object")?;
    let tower = object
        .remove("tower")
        .ok_or("a model record has no 'tower'")?;
    object.insert("tower_kind".into(), tower);
    object.entry("format_version").or_insert_with(|| json!(1));
    object.remove("active");
    Ok(record)
}

/// Version 1 had only the two thresholds.
fn settings_v1_to_v2(mut record: Value) -> Result<Value, String> {
    let object = record
        .as_object_mut()
        .ok_or("the settings record is not an object")?;
    object.entry("backend").or_insert_with(|| json!("auto"));
    object.entry("mode").or_insert_with(|| json!("fine_tune"));
    Ok(record)
}

/// Every record of a database as JSON, grouped by object store: what a migration works on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RawDatabase {
    pub schema_version: SchemaVersion,
    pub stores: BTreeMap<String, Vec<Value>>,
}

impl RawDatabase {
    /// Runs the migrations up to `to` on the records, all or nothing (it works on a copy).
    pub fn migrate(&self, to: SchemaVersion) -> Result<RawDatabase, StoreError> {
        let mut db = self.clone();
        for migration in migrations_between(self.schema_version, to)? {
            let fail = |detail: String| StoreError::MigrationFailed {
                from: migration.from.0,
                to: migration.to.0,
                detail,
            };
            for action in migration.actions {
                match *action {
                    CreateObjectStore { store, .. } => {
                        db.stores.entry(store.to_owned()).or_default();
                    }
                    CreateIndex { .. } => {}
                    DeriveActiveModelPointers => {
                        let pointers: Vec<Value> = db
                            .stores
                            .get(MODELS)
                            .into_iter()
                            .flatten()
                            .filter(|m| m.get("active") == Some(&Value::Bool(true)))
                            .map(|m| json!({ "profile_id": m["profile_id"], "model_id": m["id"] }))
                            .collect();
                        db.stores
                            .entry(ACTIVE_MODELS.to_owned())
                            .or_default()
                            .extend(pointers);
                    }
                    RewriteRecords { store, rewrite } => {
                        if let Some(records) = db.stores.get_mut(store) {
                            for record in records.iter_mut() {
                                *record = rewrite(record.take())
                                    .map_err(|e| fail(format!("{store}: {e}")))?;
                            }
                        }
                    }
                }
            }
            db.schema_version = migration.to;
        }
        Ok(db)
    }

    /// Reads current-version records into typed contents.
    pub fn into_contents(self) -> Result<StoreContents, StoreError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                detail: format!(
                    "records are at schema version {}, expected {}",
                    self.schema_version.0, SCHEMA_VERSION.0
                ),
            });
        }
        let mut stores = self.stores;
        fn take<T: serde::de::DeserializeOwned>(
            stores: &mut BTreeMap<String, Vec<Value>>,
            store: &str,
        ) -> Result<Vec<T>, StoreError> {
            stores
                .remove(store)
                .unwrap_or_default()
                .into_iter()
                .map(|v| {
                    serde_json::from_value(v).map_err(|e| StoreError::Corrupt {
                        detail: format!("a record in '{store}' is unreadable: {e}"),
                    })
                })
                .collect()
        }
        #[derive(Deserialize)]
        struct Pointer {
            profile_id: String,
            model_id: String,
        }
        let mut contents = StoreContents::default();
        for p in take::<Profile>(&mut stores, PROFILES)? {
            contents.profiles.insert(p.id.clone(), p);
        }
        for i in take::<StoredImage>(&mut stores, IMAGES)? {
            contents.images.insert(i.id.clone(), i);
        }
        for m in take::<StoredModel>(&mut stores, MODELS)? {
            contents.models.insert(m.id.clone(), m);
        }
        for p in take::<Pointer>(&mut stores, ACTIVE_MODELS)? {
            contents.active_models.insert(p.profile_id, p.model_id);
        }
        for c in take::<Checkpoint>(&mut stores, CHECKPOINTS)? {
            contents.checkpoints.insert(c.profile_id.clone(), c);
        }
        for r in take::<TrainingRun>(&mut stores, RUNS)? {
            contents.runs.insert(r.id.clone(), r);
        }
        contents.settings = take::<Settings>(&mut stores, SETTINGS)?.into_iter().next();
        Ok(contents)
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
            assert_eq!(m.to.0, version.0 + 1);
            version = m.to;
        }
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let err = migrations_between(SchemaVersion(3), SCHEMA_VERSION).unwrap_err();
        assert_eq!(
            err,
            StoreError::SchemaTooNew {
                found: 3,
                supported: 2
            }
        );
    }

    #[test]
    fn a_bad_v1_record_fails_the_whole_migration() {
        let mut db = RawDatabase {
            schema_version: SchemaVersion(1),
            ..Default::default()
        };
        db.stores
            .insert(IMAGES.into(), vec![json!({ "id": "no-kind" })]);
        let err = db.migrate(SCHEMA_VERSION).unwrap_err();
        assert!(
            matches!(err, StoreError::MigrationFailed { from: 1, to: 2, .. }),
            "{err}"
        );
    }
}
