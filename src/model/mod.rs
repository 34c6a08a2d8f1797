//! The data model: sales events, attainment events, progress records, time and exact money.

pub mod attainment;
pub mod event;
pub mod money;
pub mod progress;
pub mod time;

pub use attainment::{Attainment, AttainmentKind, Outcome};
pub use event::{SalesEvent, StringField};
pub use money::Decimal;
pub use progress::{GoalProgress, ProgressStatus};
pub use time::{Duration, Timestamp, Window};
