//! Faults the specs can switch on, to prove that a panic deep inside becomes an `INTERNAL`
//! error and frees what it held (a connection, a slot), and one switch that turns the statement
//! guard off (to show the connection's own check of the transaction status). Off unless a spec calls
//! `setTestFault` from `binding.js` (not re-exported by `index.js`); checking one costs a
//! relaxed atomic load.

use std::sync::atomic::{AtomicU32, Ordering};

use napi_derive::napi;

/// A place where a switched-on fault panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Fault {
    /// While a database statement runs (its connection leased).
    Statement = 1,
    /// While an OpenAI stream's next chunk is read (its slot held).
    StreamRead = 2,
    /// Not a panic: the statement guard lets everything through, so that a spec can show what
    /// the connection itself does when a raw BEGIN slips onto a shared connection.
    NoStatementGuard = 4,
}

static ARMED: AtomicU32 = AtomicU32::new(0);

/// Panics here if `fault` is switched on.
pub fn trip(fault: Fault) {
    if is_on(fault) {
        panic!("injected fault: {fault:?}");
    }
}

/// Whether `fault` is switched on.
pub fn is_on(fault: Fault) -> bool {
    ARMED.load(Ordering::Relaxed) & fault as u32 != 0
}

/// For specs: switches the named faults on (`'statement'`, `'stream-read'`,
/// `'no-statement-guard'`), or all off (`[]`).
#[napi]
pub fn set_test_fault(names: Vec<String>) -> napi::Result<()> {
    let mut armed = 0;
    for name in &names {
        armed |= match name.as_str() {
            "statement" => Fault::Statement as u32,
            "stream-read" => Fault::StreamRead as u32,
            "no-statement-guard" => Fault::NoStatementGuard as u32,
            other => {
                return Err(napi::Error::new(
                    napi::Status::InvalidArg,
                    format!("no such test fault: {other}"),
                ))
            }
        };
    }
    ARMED.store(armed, Ordering::Relaxed);
    Ok(())
}
