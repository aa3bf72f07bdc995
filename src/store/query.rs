//! Reads: a [`Query`] names the records one read transaction returns, as [`Record`]s. Every
//! backend answers the same queries; the typed `Store` methods are built on them.

use std::collections::BTreeMap;

use super::dataset::{Change, StoreContents};
use super::types::{
    Checkpoint, ImageRole, ModelId, ModelSummary, Profile, ProfileId, Settings, StoredImage,
    StoredModel, TrainingRun,
};

/// What one read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query<'a> {
    Profiles,
    Image(&'a str),
    /// The photos of a profile, of one role or all.
    Images {
        profile: &'a str,
        role: Option<ImageRole>,
    },
    /// The models of a profile without their weights.
    ModelSummaries(&'a str),
    /// The profile's active-model pointer only.
    ActiveModelId(&'a str),
    /// The pointer and the model it points at, read together so that a concurrent switch
    /// cannot slip in between.
    ActiveModel(&'a str),
    /// The profile's checkpoint.
    Checkpoint(&'a str),
    Run(&'a str),
    Runs(&'a str),
    Settings,
    /// Every record, for export.
    Everything,
}

/// One record as a read returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Profile(Profile),
    Image(StoredImage),
    Model(StoredModel),
    ModelSummary(ModelSummary),
    ActiveModel {
        profile_id: ProfileId,
        model_id: ModelId,
    },
    Checkpoint(Checkpoint),
    Run(TrainingRun),
    Settings(Settings),
}

/// The record types a read can be narrowed to.
pub trait FromRecord: Sized {
    fn from_record(record: Record) -> Option<Self>;
}

macro_rules! from_record {
    ($($variant:ident => $type:ty),*) => {$(
        impl FromRecord for $type {
            fn from_record(record: Record) -> Option<Self> {
                match record {
                    Record::$variant(value) => Some(value),
                    _ => None,
                }
            }
        }
    )*};
}

from_record!(
    Profile => Profile,
    Image => StoredImage,
    Model => StoredModel,
    ModelSummary => ModelSummary,
    Checkpoint => Checkpoint,
    Run => TrainingRun,
    Settings => Settings
);

/// The record under `key`, if any, as a `Record`.
fn keyed<T: Clone>(map: &BTreeMap<String, T>, key: &str, wrap: fn(T) -> Record) -> Vec<Record> {
    map.get(key).cloned().map(wrap).into_iter().collect()
}

/// Every one of `values`, as `Record`s.
fn every<'a, T: Clone + 'a>(
    values: impl Iterator<Item = &'a T>,
    wrap: fn(T) -> Record,
) -> Vec<Record> {
    values.cloned().map(wrap).collect()
}

/// The records of one type in `records`, in their order.
pub fn narrow<T: FromRecord>(records: Vec<Record>) -> Vec<T> {
    records.into_iter().filter_map(T::from_record).collect()
}

impl StoreContents {
    /// Answers a query from the contents (the stores that hold everything in memory).
    pub fn query(&self, query: Query<'_>) -> Vec<Record> {
        match query {
            Query::Profiles => every(self.profiles.values(), Record::Profile),
            Query::Image(id) => keyed(&self.images, id, Record::Image),
            Query::Images { profile, role } => every(
                self.images.values().filter(|i| {
                    i.meta.profile_id == profile && role.is_none_or(|r| i.meta.role == r)
                }),
                Record::Image,
            ),
            Query::ModelSummaries(profile) => self
                .models
                .values()
                .filter(|m| m.meta.profile_id == profile)
                .map(|m| Record::ModelSummary(m.summary()))
                .collect(),
            Query::ActiveModelId(profile) => self.active_pointer(profile).into_iter().collect(),
            Query::ActiveModel(profile) => {
                let mut records: Vec<Record> = self.active_pointer(profile).into_iter().collect();
                if let Some(id) = self.active_models.get(profile) {
                    records.extend(keyed(&self.models, id, Record::Model));
                }
                records
            }
            Query::Checkpoint(profile) => keyed(&self.checkpoints, profile, Record::Checkpoint),
            Query::Run(id) => keyed(&self.runs, id, Record::Run),
            Query::Runs(profile) => every(
                self.runs.values().filter(|r| r.profile_id == profile),
                Record::Run,
            ),
            Query::Settings => self.settings.map(Record::Settings).into_iter().collect(),
            Query::Everything => self.clone().into_records(),
        }
    }

    fn active_pointer(&self, profile: &str) -> Option<Record> {
        self.active_models
            .get(profile)
            .map(|model_id| Record::ActiveModel {
                profile_id: profile.to_owned(),
                model_id: model_id.clone(),
            })
    }

    /// Every record, one by one.
    pub fn into_records(self) -> Vec<Record> {
        let mut records: Vec<Record> = self.profiles.into_values().map(Record::Profile).collect();
        records.extend(self.images.into_values().map(Record::Image));
        records.extend(self.models.into_values().map(Record::Model));
        records.extend(
            self.active_models
                .into_iter()
                .map(|(profile_id, model_id)| Record::ActiveModel {
                    profile_id,
                    model_id,
                }),
        );
        records.extend(self.checkpoints.into_values().map(Record::Checkpoint));
        records.extend(self.runs.into_values().map(Record::Run));
        records.extend(self.settings.map(Record::Settings));
        records
    }

    /// Contents from records (summaries, which carry no weights, are left out).
    pub fn from_records(records: Vec<Record>) -> StoreContents {
        let mut contents = StoreContents::default();
        for change in records.into_iter().filter_map(Record::into_change) {
            contents.apply(change);
        }
        contents
    }
}

impl Record {
    /// The change that stores this record; `None` for a summary, which has no weights.
    pub fn into_change(self) -> Option<Change> {
        Some(match self {
            Record::Profile(p) => Change::PutProfile(p),
            Record::Image(i) => Change::PutImage(i),
            Record::Model(m) => Change::PutModel(m),
            Record::ModelSummary(_) => return None,
            Record::ActiveModel {
                profile_id,
                model_id,
            } => Change::SetActiveModel {
                profile_id,
                model_id,
            },
            Record::Checkpoint(c) => Change::PutCheckpoint(c),
            Record::Run(r) => Change::PutRun(r),
            Record::Settings(s) => Change::PutSettings(s),
        })
    }
}
