//! A statement started by the caller's own thread, when it can go out at once: a connection has
//! room for it now, nobody waits before it, and the statement (and a user client's `set_config`)
//! is already prepared on that connection. Its request is then built and written right there,
//! and its reply is handed over by the connection's task when it reads it: no task runs for it
//! and no tokio thread is woken to send it. One statement at a time from Node costs one wake-up
//! of a tokio thread (the reply's) where a task per statement cost three or four.
//!
//! Anything else (a statement not prepared yet, a full pool, waiting callers, a transaction)
//! goes the way of a task (`DbPool::query_since`).

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::db::auth::context::{RoleContext, SET_ROLE_SQL};
use crate::db::codec::output::QueryOutput;
use crate::db::codec::params::Param;
use crate::db::codec::rows::ValueStyle;
use crate::db::engine::connection::Prepared;
use crate::db::engine::execute;
use crate::db::engine::policy::StatementPolicy;
use crate::db::engine::pool::{Lease, LeaseKind};
use crate::db::engine::retry::Failure;
use crate::db::engine::wire::exchange::{Exchange, Expect, Failed, Sink};
use crate::db::engine::DbPool;

/// A statement ready to be written: its place on a connection and its request.
pub struct Ready {
    lease: Lease,
    request: Request,
    policy: StatementPolicy,
    deadline: Option<Instant>,
}

/// A statement's request, what reads its answer, and the prepared statements it names (held
/// until answered: an evicted statement is closed only when nobody holds it).
struct Request {
    bytes: BytesMut,
    sinks: Vec<Sink>,
    statement: Option<Arc<Prepared>>,
    role: Option<Arc<Prepared>>,
}

impl DbPool {
    /// The statement ready to go now, or None when it must wait for a task (`Some(Err)`: it
    /// cannot run at all, its values do not fit its parameters).
    pub fn ready_now(
        &self,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
        role: Option<&RoleContext>,
    ) -> Option<Result<Ready, Failure>> {
        let lease = self.pool().try_acquire_now(LeaseKind::Shared)?;
        crate::faults::trip(crate::faults::Fault::Statement);
        let policy = *self.policy();
        let request = if policy.one_flight {
            execute::one_flight_request(sql, params, style, role).map(|(bytes, sinks)| Request {
                bytes,
                sinks,
                statement: None,
                role: None,
            })
        } else {
            match prepared(&lease, sql, params, style, role) {
                Some(request) => request,
                None => {
                    lease.unused();
                    return None;
                }
            }
        };
        Some(request.map(|request| Ready {
            lease,
            request,
            policy,
            deadline: policy.deadline(),
        }))
    }
}

/// The request of a statement prepared on the lease's connection; None when it is not.
fn prepared(
    lease: &Lease,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
    role: Option<&RoleContext>,
) -> Option<Result<Request, Failure>> {
    let conn = lease.conn();
    let statement = conn.cached(sql)?;
    let set_role = match role {
        Some(_) => Some(conn.cached(SET_ROLE_SQL)?),
        None => None,
    };
    let role_ref = set_role.as_deref().zip(role);
    let built = execute::statement_request(conn, &statement, params, role_ref, style);
    Some(built.map(|(bytes, sinks)| Request {
        bytes,
        sinks,
        statement: Some(statement),
        role: set_role,
    }))
}

impl Ready {
    /// Writes the request; `on_reply` gets the statement's reply (on the connection's task),
    /// after its lease is given back.
    pub fn send(self, on_reply: impl FnOnce(Result<QueryOutput, Failure>) + Send + 'static) {
        let Ready {
            lease,
            request,
            policy,
            deadline,
        } = self;
        let Request {
            bytes,
            sinks,
            statement,
            role,
        } = request;
        let conn = lease.conn_handle();
        let done = Box::new(move |outcome| {
            let result = execute::reply(&policy, outcome, || {
                if let Some(statement) = &statement {
                    lease.conn().forget(statement);
                }
            });
            drop((statement, role, lease));
            on_reply(result);
        });
        let exchange = Exchange::new(sinks, Expect::Idle, deadline, done);
        if let Err(unsent) = conn.send(&bytes, exchange) {
            unsent.fail(Failed::NotSent("the connection was closed".into()));
        }
    }
}
