//! Limits shared by every process that uses the same Redis and `limitKey`: the concurrency cap
//! as leases with an expiry, the request and token budgets, and rate-limit pauses.
//!
//! Each HTTP attempt holds a lease while it runs (after the process's own queue has let it go),
//! renewed every third of `leaseMs`; a process that dies gives its leases back when they expire.
//! Waiting is fair across processes: each process that wants leases registers its oldest waiting
//! request's enqueue time, and the script grants to the oldest first (the oldest may take all it
//! needs, the others one each, per call). Nobody polls in a tight loop: a release publishes on a
//! channel that wakes the waiting processes; otherwise a process looks again when its hint says
//! (a window or pause ends) or once a second, which also keeps its registration alive.
//!
//! Every decision runs in one Lua script (atomic, on Redis's clock). When Redis cannot be reached,
//! requests go on under the local limits and `sharedLimitFallbacks` counts them; the next
//! request that finds Redis back uses the shared limits again.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};
use tokio::sync::{oneshot, Notify};

/// How long Redis may take to answer before the pool falls back to local limits.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// A waiting process's registration lives this long unless refreshed.
const ALIVE_MS: u64 = 3_000;
/// How often a waiting process looks again without being woken.
const SAFETY_WAKE: Duration = Duration::from_millis(1_000);
/// How long a spare lease is kept unused before it goes back to Redis.
const SPARE_IDLE: Duration = Duration::from_millis(200);
/// After a failure, how long before Redis is tried again (requests meanwhile run locally).
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leases, procs, alive, sent, tokens, pause, seq, wanted = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local proc, score, want = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_conc, lease_ms, alive_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local rpm, tpm, window, need = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
for _, p in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', now)) do
  redis.call('ZREM', procs, p)
  redis.call('ZREM', alive, p)
end
redis.call('ZADD', procs, score, proc)
redis.call('ZADD', alive, now + alive_ms, proc)
local others = redis.call('ZCARD', procs) - 1
local function wait(hint)
  redis.call('PUBLISH', wanted, proc)
  return {0, hint, others}
end
local paused = tonumber(redis.call('GET', pause) or '0')
if paused > now then return wait(paused - now) end
local free = max_conc - redis.call('ZCARD', leases)
if free <= 0 then
  -- Look again when the first lease would expire (its holder may have died): a release wakes
  -- us sooner, an expiry does not publish.
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  return wait(tonumber(first[2]) - now + 1)
end
local rank = redis.call('ZRANK', procs, proc)
if rank >= free then return wait(-1) end
local grant = want
if rank > 0 then
  grant = 1
else
  -- The oldest takes the waiters older than the next process's oldest (at least one): FIFO
  -- across processes, not only between their heads. ARGV[11..] are this process's waiters'
  -- enqueue times, oldest first.
  local nextp = redis.call('ZRANGE', procs, 1, 1, 'WITHSCORES')
  if #nextp > 0 then
    local limit, next_score = 0, tonumber(nextp[2])
    for i = 11, #ARGV do
      if tonumber(ARGV[i]) <= next_score then limit = limit + 1 end
    end
    if limit < 1 then limit = 1 end
    if grant > limit then grant = limit end
  end
end
if grant > free - rank then grant = free - rank end
if rpm > 0 or tpm > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', sent, '-inf', now - window)) do redis.call('HDEL', tokens, id) end
  redis.call('ZREMRANGEBYSCORE', sent, '-inf', now - window)
  if rpm > 0 then
    local used = redis.call('ZCARD', sent)
    if used >= rpm then
      local oldest = redis.call('ZRANGE', sent, 0, 0, 'WITHSCORES')
      return wait(tonumber(oldest[2]) + window - now)
    end
    if grant > rpm - used then grant = rpm - used end
  end
  if tpm > 0 then
    grant = 1
    local sum = 0
    for _, v in ipairs(redis.call('HVALS', tokens)) do sum = sum + tonumber(v) end
    if sum > 0 and sum + need > tpm then
      local entries = redis.call('ZRANGE', sent, 0, -1, 'WITHSCORES')
      for i = 1, #entries, 2 do
        sum = sum - tonumber(redis.call('HGET', tokens, entries[i]) or '0')
        if sum + need <= tpm then return wait(tonumber(entries[i + 1]) + window - now) end
      end
      return wait(window)
    end
  end
end
local granted = {1, others}
for i = 1, grant do
  local id = redis.call('INCR', seq)
  redis.call('ZADD', leases, now + lease_ms, id)
  if rpm > 0 or tpm > 0 then
    redis.call('ZADD', sent, now, id)
    redis.call('HSET', tokens, id, need)
  end
  table.insert(granted, id)
end
if grant >= want then
  redis.call('ZREM', procs, proc)
  redis.call('ZREM', alive, proc)
else
  redis.call('PUBLISH', wanted, proc)
end
return granted
"#;

const RELEASE: &str = r#"
local n = redis.call('ZREM', KEYS[1], unpack(ARGV))
if n > 0 then redis.call('PUBLISH', KEYS[2], n) end
return n
"#;

const RENEW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i]) end
return 1
"#;

const PAUSE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ = now + tonumber(ARGV[1])
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > old then redis.call('SET', KEYS[1], until_, 'PX', tonumber(ARGV[1]) + 1000) end
return 1
"#;

const USAGE: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"#;

/// What the shared limits are, from the pool's options.
#[derive(Debug, Clone)]
pub struct SharedOptions {
    pub redis_url: String,
    pub key: String,
    pub lease: Duration,
    pub max_concurrent: usize,
    pub requests_per_window: Option<u64>,
    pub tokens_per_window: Option<u64>,
    pub window: Duration,
}

struct Waiter {
    enqueued_ms: u64,
    tokens: u64,
    reply: oneshot::Sender<SharedLease>,
}

pub struct SharedLimits {
    options: SharedOptions,
    client: redis::Client,
    /// This process's name in the waiting list.
    proc_id: String,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// Set after a failure; cleared when Redis answers again.
    down_since: Mutex<Option<Instant>>,
    waiters: Mutex<VecDeque<Waiter>>,
    wake: Notify,
    live: Mutex<HashSet<i64>>,
    driver_running: AtomicBool,
    /// Another process is waiting for a lease (it said so on the `wanted` channel, or the last
    /// script call counted one). While nobody else waits, a finished request hands its lease
    /// straight to this process's next waiter, without Redis: no other process is passed over.
    others_waiting: AtomicBool,
    /// Leases this process finished with while nobody else waited, kept (and renewed) for its
    /// next requests; given back to Redis as soon as another process wants one, or after
    /// `SPARE_IDLE` unused.
    spare: Mutex<Vec<(i64, Instant)>>,
    /// Set by `close()`: a scripted answer must not make `others_waiting` false again.
    closed: AtomicBool,
    fallbacks: AtomicU64,
    scripts: Scripts,
}

struct Scripts {
    acquire: Script,
    release: Script,
    renew: Script,
    pause: Script,
    usage: Script,
}

/// A place under the shared limits; given back when dropped. `Local` when Redis was unreachable
/// (the process's own limits still held).
pub enum SharedLease {
    Shared { id: i64, owner: Weak<SharedLimits> },
    Local,
}

impl Drop for SharedLease {
    fn drop(&mut self) {
        if let SharedLease::Shared { id, owner } = self {
            if let Some(owner) = owner.upgrade() {
                owner.release(*id);
            }
        }
    }
}

impl SharedLease {
    /// The request's real tokens replace its estimate in the shared token budget.
    pub fn set_tokens(&self, tokens: u64) {
        if let SharedLease::Shared { id, owner } = self {
            if let Some(owner) = owner.upgrade() {
                let id = *id;
                tokio::spawn(async move {
                    let _ = owner
                        .run::<i64>(|keys, scripts| {
                            let mut call = scripts.usage.key(&keys.tokens);
                            call.arg(id).arg(tokens);
                            call
                        })
                        .await;
                });
            }
        }
    }
}

struct Keys {
    leases: String,
    procs: String,
    alive: String,
    sent: String,
    tokens: String,
    pause: String,
    seq: String,
    channel: String,
    wanted: String,
}

impl SharedLimits {
    pub fn new(options: SharedOptions) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(options.redis_url.as_str())
            .map_err(|e| format!("redisUrl is not a Redis URL ({:?})", e.kind()))?;
        let proc_id = format!("{}:{:016x}", std::process::id(), fastrand::u64(..));
        Ok(Arc::new(SharedLimits {
            options,
            client,
            proc_id,
            connection: tokio::sync::Mutex::new(None),
            down_since: Mutex::new(None),
            waiters: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            live: Mutex::new(HashSet::new()),
            driver_running: AtomicBool::new(false),
            others_waiting: AtomicBool::new(true),
            spare: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
            scripts: Scripts {
                acquire: Script::new(ACQUIRE),
                release: Script::new(RELEASE),
                renew: Script::new(RENEW),
                pause: Script::new(PAUSE),
                usage: Script::new(USAGE),
            },
        }))
    }

    /// Requests that ran under the local limits because Redis could not be reached.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn keys(&self) -> Keys {
        let k = &self.options.key;
        Keys {
            leases: format!("{k}:leases"),
            procs: format!("{k}:waiting"),
            alive: format!("{k}:alive"),
            sent: format!("{k}:sent"),
            tokens: format!("{k}:tokens"),
            pause: format!("{k}:pause"),
            seq: format!("{k}:seq"),
            channel: format!("{k}:released"),
            wanted: format!("{k}:wanted"),
        }
    }

    fn is_down(&self) -> bool {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        match *down {
            Some(since) if since.elapsed() < RETRY_AFTER_FAILURE => true,
            Some(_) => {
                // Time to try again: the next call decides.
                *down = None;
                false
            }
            None => false,
        }
    }

    fn mark_down(&self) {
        *self.down_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Runs one script with a timeout; a failure marks Redis down.
    async fn run<'s, T: redis::FromRedisValue>(
        &'s self,
        build: impl FnOnce(&Keys, &'s Scripts) -> ScriptInvocation<'s>,
    ) -> Option<T> {
        if self.is_down() {
            return None;
        }
        let mut guard = self.connection.lock().await;
        if guard.is_none() {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT))
                .set_number_of_retries(0);
            match tokio::time::timeout(
                REDIS_TIMEOUT * 2,
                self.client.get_connection_manager_with_config(config),
            )
            .await
            {
                Ok(Ok(conn)) => *guard = Some(conn),
                _ => {
                    self.mark_down();
                    return None;
                }
            }
        }
        let mut conn = guard.clone()?;
        drop(guard);
        let invocation = build(&self.keys(), &self.scripts);
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Some(value),
            _ => {
                self.mark_down();
                None
            }
        }
    }

    /// Waits for a shared place for one request (enqueued locally at `enqueued`, estimated at
    /// `tokens`), or a local one when Redis is unreachable.
    pub async fn lease(self: &Arc<Self>, enqueued: SystemTime, tokens: u64) -> SharedLease {
        if self.is_down() {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return SharedLease::Local;
        }
        if !self.others_waiting.load(Ordering::Acquire) {
            let spare = self.lock_spare().pop();
            if let Some((id, _)) = spare {
                return SharedLease::Shared {
                    id,
                    owner: Arc::downgrade(self),
                };
            }
        }
        let (tx, rx) = oneshot::channel();
        let enqueued_ms = enqueued
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.lock_waiters().push_back(Waiter {
            enqueued_ms,
            tokens,
            reply: tx,
        });
        self.ensure_driver();
        self.wake.notify_waiters();
        match rx.await {
            Ok(lease) => lease,
            Err(_) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                SharedLease::Local
            }
        }
    }

    /// Keeps no lease for later any more and gives the spare ones back (the pool is closing).
    pub fn close(self: &Arc<Self>) {
        self.others_waiting.store(true, Ordering::Release);
        self.closed.store(true, Ordering::Release);
        self.release_spare(Duration::ZERO);
    }

    /// Tells every process to send nothing for `wait` (the API said a budget is spent).
    pub async fn pause_for(&self, wait: Duration) {
        let ms = wait.as_millis() as u64;
        let _ = self
            .run::<i64>(|keys, scripts| {
                let mut call = scripts.pause.key(&keys.pause);
                call.arg(ms);
                call
            })
            .await;
    }

    fn note_others(&self, others: i64) {
        let closed = self.closed.load(Ordering::Acquire);
        self.others_waiting
            .store(closed || others > 0, Ordering::Release);
    }

    fn lock_spare(&self) -> std::sync::MutexGuard<'_, Vec<(i64, Instant)>> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the spare leases back to Redis: all of them, or those unused for `idle`.
    fn release_spare(self: &Arc<Self>, idle: Duration) {
        let released: Vec<i64> = {
            let mut spare = self.lock_spare();
            let (gone, kept): (Vec<_>, Vec<_>) = spare
                .drain(..)
                .partition(|(_, since)| since.elapsed() >= idle);
            *spare = kept;
            gone.into_iter().map(|(id, _)| id).collect()
        };
        for id in released {
            self.release_to_redis(id);
        }
    }

    fn lock_waiters(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiter>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A finished request's lease: to this process's next waiter while no other process waits
    /// (no Redis round trip; the lease keeps being renewed), else back to Redis.
    fn release(self: &Arc<Self>, id: i64) {
        // Budgets count every request in Redis, so a lease is handed on locally only without
        // them.
        let budgets =
            self.options.requests_per_window.is_some() || self.options.tokens_per_window.is_some();
        if !budgets && !self.others_waiting.load(Ordering::Acquire) && !self.is_down() {
            let mut waiters = self.lock_waiters();
            while let Some(waiter) = waiters.pop_front() {
                let lease = SharedLease::Shared {
                    id,
                    owner: Arc::downgrade(self),
                };
                match waiter.reply.send(lease) {
                    Ok(()) => return,
                    // That caller gave up: try the next (its drop must not release this id).
                    Err(mut lease) => {
                        if let SharedLease::Shared { owner, .. } = &mut lease {
                            *owner = Weak::new();
                        }
                    }
                }
            }
            drop(waiters);
            // Nobody here waits right now: keep it for the next request.
            self.lock_spare().push((id, Instant::now()));
            return;
        }
        self.release_to_redis(id);
    }

    fn release_to_redis(self: &Arc<Self>, id: i64) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let this = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime (process exit): the lease expires by itself
        };
        runtime.spawn(async move {
            let _ = this
                .run::<i64>(|keys, scripts| {
                    let mut call = scripts.release.key(&keys.leases);
                    call.key(&keys.channel).arg(id);
                    call
                })
                .await;
        });
    }

    fn ensure_driver(self: &Arc<Self>) {
        if !self.driver_running.swap(true, Ordering::AcqRel) {
            tokio::spawn(drive(Arc::downgrade(self)));
            tokio::spawn(listen(Arc::downgrade(self)));
            tokio::spawn(renew(Arc::downgrade(self)));
        }
    }

    /// One round: asks Redis for as many leases as there are waiters (one under a token budget)
    /// and hands them out in order. Returns how long to wait before the next round, or `None`
    /// to wait for a release.
    async fn round(self: &Arc<Self>) -> Option<Duration> {
        let (want, score, need, ages) = {
            let waiters = self.lock_waiters();
            let Some(head) = waiters.front() else {
                return Some(SAFETY_WAKE);
            };
            let want = if self.options.tokens_per_window.is_some() {
                1
            } else {
                waiters.len()
            };
            let ages: Vec<u64> = waiters.iter().take(want).map(|w| w.enqueued_ms).collect();
            (want, head.enqueued_ms, head.tokens, ages)
        };
        let o = &self.options;
        let proc_id = self.proc_id.clone();
        let args = (
            want,
            o.max_concurrent,
            o.lease.as_millis() as u64,
            o.requests_per_window.unwrap_or(0),
            o.tokens_per_window.unwrap_or(0),
            o.window.as_millis() as u64,
        );
        let answer = self
            .run::<Vec<i64>>(move |keys, scripts| {
                let mut call = scripts.acquire.key(&keys.leases);
                call.key(&keys.procs)
                    .key(&keys.alive)
                    .key(&keys.sent)
                    .key(&keys.tokens)
                    .key(&keys.pause)
                    .key(&keys.seq)
                    .key(&keys.wanted)
                    .arg(proc_id)
                    .arg(score)
                    .arg(args.0)
                    .arg(args.1)
                    .arg(args.2)
                    .arg(ALIVE_MS)
                    .arg(args.3)
                    .arg(args.4)
                    .arg(args.5)
                    .arg(need);
                for age in ages {
                    call.arg(age);
                }
                call
            })
            .await;
        let Some(answer) = answer else {
            // Redis is unreachable: everyone waiting goes on under the local limits.
            let waiters: Vec<Waiter> = self.lock_waiters().drain(..).collect();
            self.fallbacks
                .fetch_add(waiters.len() as u64, Ordering::Relaxed);
            for waiter in waiters {
                let _ = waiter.reply.send(SharedLease::Local);
            }
            return Some(RETRY_AFTER_FAILURE);
        };
        match answer.as_slice() {
            [1, others, ids @ ..] => {
                self.note_others(*others);
                // Leases nobody took (a waiter gave up) are released after the waiters' lock
                // is let go: releasing may hand them to a waiter, which takes that lock.
                let mut unclaimed = Vec::new();
                let mut waiters = self.lock_waiters();
                for &id in ids {
                    let lease = SharedLease::Shared {
                        id,
                        owner: Arc::downgrade(self),
                    };
                    self.live
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id);
                    match waiters.pop_front() {
                        Some(waiter) => {
                            if let Err(lease) = waiter.reply.send(lease) {
                                unclaimed.push(lease);
                            }
                        }
                        None => unclaimed.push(lease),
                    }
                }
                drop(waiters);
                drop(unclaimed);
                Some(Duration::ZERO)
            }
            [0, hint, others] => {
                self.note_others(*others);
                (*hint > 0).then(|| Duration::from_millis(*hint as u64))
            }
            _ => None,
        }
    }
}

/// Hands out leases while anyone waits; sleeps on releases, hints and the safety wake.
async fn drive(weak: Weak<SharedLimits>) {
    loop {
        let Some(this) = weak.upgrade() else { return };
        let woken = this.wake.notified();
        let mut woken = std::pin::pin!(woken);
        woken.as_mut().enable();
        let waiting = !this.lock_waiters().is_empty();
        let pause = if waiting {
            this.round().await
        } else {
            Some(SAFETY_WAKE * 30)
        };
        match pause {
            Some(d) if d.is_zero() => continue,
            Some(d) => {
                let _ = tokio::time::timeout(d.min(SAFETY_WAKE * 30), woken).await;
            }
            None => {
                let _ = tokio::time::timeout(SAFETY_WAKE, woken).await;
            }
        }
    }
}

/// Wakes the driver whenever any process releases a lease, and notes when another process
/// wants one (then leases go back through Redis instead of being handed on locally).
async fn listen(weak: Weak<SharedLimits>) {
    loop {
        let Some(this) = weak.upgrade() else { return };
        let keys = this.keys();
        let client = this.client.clone();
        let me = this.proc_id.clone();
        drop(this);
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&keys.channel).await?;
            pubsub.subscribe(&keys.wanted).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(REDIS_TIMEOUT * 2, subscribed).await {
            Ok(Ok(pubsub)) => {
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(this) = weak.upgrade() else { return };
                    if message.get_channel_name() == keys.wanted {
                        let from: String = message.get_payload().unwrap_or_default();
                        if from != me {
                            this.others_waiting.store(true, Ordering::Release);
                            this.release_spare(Duration::ZERO);
                        }
                    } else {
                        this.wake.notify_waiters();
                    }
                }
            }
            _ => tokio::time::sleep(RETRY_AFTER_FAILURE).await,
        }
    }
}

/// Renews this process's leases every third of `leaseMs` while they run.
async fn renew(weak: Weak<SharedLimits>) {
    loop {
        let Some(this) = weak.upgrade() else { return };
        let every = (this.options.lease / 3).min(SPARE_IDLE);
        this.release_spare(SPARE_IDLE);
        let ids: Vec<i64> = this
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if !ids.is_empty() {
            let lease_ms = this.options.lease.as_millis() as u64;
            let _ = this
                .run::<i64>(move |keys, scripts| {
                    let mut call = scripts.renew.key(&keys.leases);
                    call.arg(lease_ms);
                    for id in ids {
                        call.arg(id);
                    }
                    call
                })
                .await;
        }
        drop(this);
        tokio::time::sleep(every).await;
    }
}
