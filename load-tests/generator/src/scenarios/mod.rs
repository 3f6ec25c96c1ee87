//! One module per scenario; each answers its figures as JSON.

pub mod idle;
pub mod pairs;
pub mod storm;
