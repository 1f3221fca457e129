//! One open connection as the pool holds it: the channel its requests go through (its task
//! owns the socket, `wire::driver`), the statements prepared on it, the types it looked up, and
//! whether it may be lent again.
//!
//! Many statements share a connection at once (pipelining): each is one request on the channel,
//! answered in order. A statement prepared here is cached under its SQL text with what the
//! server described (parameter types, result columns) and an encoder per reply style; past
//! `STATEMENT_CACHE_CAPACITY` the oldest is evicted, and a Close for it rides in front of the
//! next request once nobody holds it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::BytesMut;
use postgres_protocol::message::frontend;

use crate::db::codec::rows::{check_columns, RowEncoder, ValueStyle};
use crate::db::codec::types::{Column, Type};
use crate::db::engine::wire::channel::Channel;
use crate::db::engine::wire::exchange::Exchange;
use crate::error::PoolError;

/// Prepared statements kept per connection.
const STATEMENT_CACHE_CAPACITY: usize = 512;

/// A statement prepared on one connection, as the server described it.
#[derive(Debug)]
pub struct Prepared {
    /// The SQL it was prepared for: its key in the connection's cache.
    pub sql: Arc<str>,
    pub name: String,
    pub params: Vec<Type>,
    pub columns: Vec<Column>,
    /// Why its rows cannot be decoded (a column of a type we do not read), checked once.
    undecodable: Option<PoolError>,
    /// The reply's encoder for each `ValueStyle`, made on first use.
    encoders: [OnceLock<Arc<RowEncoder>>; 3],
}

impl Prepared {
    pub fn new(sql: &str, name: String, params: Vec<Type>, columns: Vec<Column>) -> Self {
        Prepared {
            undecodable: check_columns(&columns).err(),
            sql: sql.into(),
            name,
            params,
            columns,
            encoders: Default::default(),
        }
    }

    /// Whether its rows can be decoded; the statement is refused before it runs if not.
    pub fn decodable(&self) -> Result<(), PoolError> {
        match &self.undecodable {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    /// The encoder of this statement's rows in `style`.
    pub fn encoder(&self, style: ValueStyle) -> Arc<RowEncoder> {
        let slot = match style {
            ValueStyle::Driver => 0,
            ValueStyle::ToJson => 1,
            ValueStyle::ToJsonObjects => 2,
        };
        self.encoders[slot]
            .get_or_init(|| Arc::new(RowEncoder::new(&self.columns, style)))
            .clone()
    }
}

#[derive(Default)]
struct StatementCache {
    by_sql: HashMap<Arc<str>, Arc<Prepared>>,
    /// Insertion order, for eviction.
    order: VecDeque<Arc<str>>,
    /// Evicted, to be closed on the server once no request holds them.
    evicted: Vec<Arc<Prepared>>,
}

pub struct Conn {
    pub id: u64,
    channel: Arc<Channel>,
    statements: Mutex<StatementCache>,
    next_name: AtomicU64,
    types: Mutex<HashMap<u32, Type>>,
    /// Lent to nobody again: the session's state is not known (an abandoned transaction).
    retired: AtomicBool,
}

impl Conn {
    pub fn new(id: u64, channel: Arc<Channel>) -> Self {
        Conn {
            id,
            channel,
            statements: Mutex::new(StatementCache::default()),
            next_name: AtomicU64::new(1),
            types: Mutex::new(HashMap::new()),
            retired: AtomicBool::new(false),
        }
    }

    /// Sends a request; gives the exchange back unsent when the connection takes no more.
    pub fn send(&self, bytes: &[u8], exchange: Exchange) -> Result<(), Exchange> {
        self.channel.send(bytes, exchange)
    }

    /// The server or the network ended the session, or the connection was retired.
    pub fn is_closed(&self) -> bool {
        self.retired.load(Ordering::Acquire) || self.channel.closed().is_some()
    }

    /// Lends this connection to nobody again; it closes once what was sent on it is answered.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.channel.drain();
    }

    /// Closes the socket now: every request on it fails, and the pool replaces it.
    pub fn discard(&self) {
        self.retired.store(true, Ordering::Release);
        self.channel.discard();
    }

    /// Wakes the connection's task if a statement it has not seen yet is past its deadline.
    pub fn watch(&self, now: Instant) {
        self.channel.wake_if_overdue(now);
    }

    /// The statement prepared for `sql`, if it is.
    pub fn cached(&self, sql: &str) -> Option<Arc<Prepared>> {
        self.cache().by_sql.get(sql).cloned()
    }

    /// Keeps a statement just prepared (a twin prepared meanwhile by another caller is
    /// evicted); evicts the oldest past the capacity.
    pub fn remember(&self, prepared: Prepared) -> Arc<Prepared> {
        let prepared = Arc::new(prepared);
        let sql = prepared.sql.clone();
        let mut cache = self.cache();
        if let Some(twin) = cache.by_sql.insert(sql.clone(), prepared.clone()) {
            cache.evicted.push(twin);
        } else {
            cache.order.push_back(sql);
        }
        while cache.order.len() > STATEMENT_CACHE_CAPACITY {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(gone) = cache.by_sql.remove(&oldest) {
                cache.evicted.push(gone);
            }
        }
        prepared
    }

    /// Forgets a statement the server no longer runs as prepared (its result type changed),
    /// if it is still the one cached for its SQL.
    pub fn forget(&self, statement: &Arc<Prepared>) {
        let mut cache = self.cache();
        let sql = &statement.sql;
        match cache.by_sql.get(sql) {
            Some(cached) if Arc::ptr_eq(cached, statement) => {}
            _ => return,
        }
        if let Some(gone) = cache.by_sql.remove(sql) {
            cache.order.retain(|s| s != sql);
            cache.evicted.push(gone);
        }
    }

    /// A fresh statement name on this connection.
    pub fn statement_name(&self) -> String {
        format!("s{}", self.next_name.fetch_add(1, Ordering::Relaxed))
    }

    /// Writes a Close for each evicted statement that no request holds any more; they go in
    /// front of the request being built (their CloseComplete is read and dropped with it).
    pub fn close_evicted(&self, buf: &mut BytesMut) {
        let mut cache = self.cache();
        if cache.evicted.is_empty() {
            return;
        }
        cache.evicted.retain(|statement| {
            if Arc::strong_count(statement) > 1 {
                return true;
            }
            frontend::close(b'S', &statement.name, buf).expect("a statement name has no NUL");
            false
        });
    }

    /// A type this connection looked up before.
    pub fn known_type(&self, oid: u32) -> Option<Type> {
        Type::from_oid(oid).or_else(|| self.types().get(&oid).cloned())
    }

    pub fn remember_type(&self, ty: Type) {
        self.types().insert(ty.oid(), ty);
    }

    fn cache(&self) -> MutexGuard<'_, StatementCache> {
        self.statements.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn types(&self) -> MutexGuard<'_, HashMap<u32, Type>> {
        self.types.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Conn {
    /// The last holder let go: the session ends once its requests are answered.
    fn drop(&mut self) {
        self.channel.drain();
    }
}
