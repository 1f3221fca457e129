//! Values between JS and Postgres's binary protocol: parameters read from JS (`js_params`) and
//! encoded for their types (`params`, `numeric`, `datetime`), and result rows written as the JSON
//! JS parses (`rows`, by the type classes of `types`). Pure functions over bytes and text.

pub mod datetime;
pub mod js_params;
pub mod literal;
pub mod numeric;
pub mod output;
pub mod packed;
pub mod params;
pub mod rows;
pub mod types;
