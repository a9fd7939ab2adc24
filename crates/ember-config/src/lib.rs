//! Ember's config language.
pub mod inventory;
