//! Who a statement runs as: user tokens verified (`tokens`: HS256 with the JWT secret, ES256 and
//! RS256 with signing keys fetched through `jwks`) into the role and claims a statement is run
//! under (`context`), as PostgREST sets them.

pub mod context;
pub mod jwks;
pub mod tokens;
