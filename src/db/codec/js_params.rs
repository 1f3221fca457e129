//! A statement's parameters read from JS values, within limits.
//!
//! napi-rs's own `Vec<T>` conversion recurses without a bound: a cyclic array, or one nested a
//! few thousand deep (12 KB of JSON), overflows the main thread's stack, which ends the process
//! (a stack overflow is not a panic). Here the walk keeps the arrays it is inside (a cycle is
//! seen as one), stops at `MAX_ARRAY_DEPTH`, and counts elements and bytes against the
//! statement's budget before it allocates them. Every refusal is an `INVALID_ARGUMENT` that
//! names the parameter (`$n`).
//!
//! Values read as node-postgres reads them: null/undefined, booleans, numbers, strings, bigints,
//! Dates, Buffers and typed arrays (their bytes), arrays of any of these, and other objects as
//! `JSON.stringify` writes them.

use std::ptr;

use napi::sys;

use crate::db::codec::params::Param;
use crate::error::PoolError;

/// Deeper than any Postgres array (at most 6 dimensions) or any JSON document a request needs.
pub const MAX_ARRAY_DEPTH: usize = 32;
/// Elements of all of a statement's arrays together.
pub const MAX_ELEMENTS: u64 = 10_000_000;
/// Bytes of all of a statement's values together: Postgres refuses a message over 1 GB.
pub const MAX_BYTES: u64 = (1 << 30) - 1024;

/// The parameters argument of a napi call, kept as handles: read with `read` inside the call,
/// where a refusal can carry its own code.
pub struct ParamsArg {
    env: sys::napi_env,
    value: sys::napi_value,
}

impl napi::bindgen_prelude::FromNapiValue for ParamsArg {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        Ok(ParamsArg { env, value })
    }
}

impl napi::bindgen_prelude::TypeName for ParamsArg {
    fn type_name() -> &'static str {
        "unknown[] | null | undefined"
    }
    fn value_type() -> napi::ValueType {
        napi::ValueType::Unknown
    }
}

impl napi::bindgen_prelude::ValidateNapiValue for ParamsArg {}

impl ParamsArg {
    /// The parameters, read within the limits (still inside the napi call that received them).
    pub fn read(&self) -> Result<Vec<Param>, PoolError> {
        // SAFETY: a ParamsArg lives only for the call whose arguments these handles are.
        unsafe { read(self.env, self.value) }
    }
}

/// Reads the parameter array `value` (null or undefined: no parameters).
///
/// # Safety
/// `env` and `value` must be the live handles of the current napi call.
pub unsafe fn read(env: sys::napi_env, value: sys::napi_value) -> Result<Vec<Param>, PoolError> {
    let mut reader = Reader {
        env,
        elements: 0,
        bytes: 0,
        ancestors: Vec::new(),
        stringify: None,
        position: 0,
    };
    match unsafe { reader.type_of(value)? } {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => return Ok(Vec::new()),
        _ if unsafe { reader.is_array(value)? } => {}
        _ => return Err(invalid("query(sql, params): params must be an array")),
    }
    let length = unsafe { reader.array_length(value)? };
    reader.count_elements(length)?;
    let mut params = Vec::with_capacity(length as usize);
    for index in 0..length {
        reader.position = index as usize + 1;
        let element = unsafe { reader.element(value, index)? };
        params.push(unsafe { reader.param(element)? });
    }
    Ok(params)
}

struct Reader {
    env: sys::napi_env,
    elements: u64,
    bytes: u64,
    /// The arrays the walk is inside, outermost first.
    ancestors: Vec<sys::napi_value>,
    /// `JSON` and `JSON.stringify`, looked up at the first object.
    stringify: Option<(sys::napi_value, sys::napi_value)>,
    /// The parameter being read, from 1 (`$1`).
    position: usize,
}

impl Reader {
    fn refuse(&self, why: impl std::fmt::Display) -> PoolError {
        invalid(format!("query parameter ${}: {why}", self.position))
    }

    unsafe fn param(&mut self, value: sys::napi_value) -> Result<Param, PoolError> {
        Ok(match unsafe { self.type_of(value)? } {
            sys::ValueType::napi_undefined | sys::ValueType::napi_null => Param::Null,
            sys::ValueType::napi_boolean => Param::Bool(unsafe { self.boolean(value)? }),
            sys::ValueType::napi_number => Param::Number(unsafe { self.number(value)? }),
            sys::ValueType::napi_string => Param::Text(unsafe { self.string(value)? }),
            sys::ValueType::napi_bigint => Param::Text(unsafe { self.bigint(value)? }),
            sys::ValueType::napi_object => unsafe { self.object(value)? },
            sys::ValueType::napi_symbol => return Err(self.refuse("a Symbol cannot be a value")),
            sys::ValueType::napi_function => {
                return Err(self.refuse("a function cannot be a value"))
            }
            _ => return Err(self.refuse("this kind of value cannot be sent")),
        })
    }

    unsafe fn object(&mut self, value: sys::napi_value) -> Result<Param, PoolError> {
        if unsafe { self.is_array(value)? } {
            return unsafe { self.array(value) };
        }
        if unsafe { self.check(|env, out| sys::napi_is_typedarray(env, value, out))? } {
            return Ok(Param::Bytes(unsafe { self.typed_array(value)? }));
        }
        if unsafe { self.check(|env, out| sys::napi_is_date(env, value, out))? } {
            let epoch_ms =
                unsafe { self.get(|env, out| sys::napi_get_date_value(env, value, out))? };
            return date_text(epoch_ms)
                .map(Param::Text)
                .map_err(|why| self.refuse(why));
        }
        match unsafe { self.json(value)? } {
            Some(text) => Ok(Param::Json(text)),
            None => Ok(Param::Null),
        }
    }

    unsafe fn array(&mut self, value: sys::napi_value) -> Result<Param, PoolError> {
        for &ancestor in &self.ancestors {
            let same = unsafe {
                self.check(|env, out| sys::napi_strict_equals(env, ancestor, value, out))?
            };
            if same {
                return Err(self.refuse("the array contains itself (a cycle)"));
            }
        }
        if self.ancestors.len() >= MAX_ARRAY_DEPTH {
            return Err(self.refuse(format!(
                "arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
            )));
        }
        let length = unsafe { self.array_length(value)? };
        self.count_elements(length)?;
        self.ancestors.push(value);
        let mut items = Vec::with_capacity(length as usize);
        for index in 0..length {
            let element = unsafe { self.element(value, index)? };
            items.push(unsafe { self.param(element)? });
        }
        self.ancestors.pop();
        Ok(Param::Array(items))
    }

    fn count_elements(&mut self, length: u32) -> Result<(), PoolError> {
        self.elements += u64::from(length);
        if self.elements > MAX_ELEMENTS {
            return Err(self.refuse(format!(
                "the statement's arrays hold more than {MAX_ELEMENTS} elements"
            )));
        }
        Ok(())
    }

    fn count_bytes(&mut self, length: usize) -> Result<(), PoolError> {
        self.bytes += length as u64;
        if self.bytes > MAX_BYTES {
            return Err(self.refuse(
                "the statement's values exceed 1 GB, the most Postgres accepts in one message",
            ));
        }
        Ok(())
    }

    unsafe fn string(&mut self, value: sys::napi_value) -> Result<String, PoolError> {
        let length = unsafe {
            self.get(|env, out| {
                sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, out)
            })?
        };
        self.count_bytes(length)?;
        let mut buffer = vec![0u8; length + 1];
        let mut written = 0usize;
        unsafe {
            self.status(sys::napi_get_value_string_utf8(
                self.env,
                value,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut written,
            ))?
        };
        buffer.truncate(written);
        String::from_utf8(buffer).map_err(|_| self.refuse("the string is not valid UTF-8"))
    }

    unsafe fn bigint(&mut self, value: sys::napi_value) -> Result<String, PoolError> {
        let mut sign = 0i32;
        let mut count = 0usize;
        // With neither a sign nor a buffer, napi tells how many words the value needs.
        unsafe {
            self.status(sys::napi_get_value_bigint_words(
                self.env,
                value,
                ptr::null_mut(),
                &mut count,
                ptr::null_mut(),
            ))?
        };
        if count > 2 {
            return Err(self.refuse("a bigint outside the 128-bit range"));
        }
        let mut words = [0u64; 2];
        count = words.len();
        unsafe {
            self.status(sys::napi_get_value_bigint_words(
                self.env,
                value,
                &mut sign,
                &mut count,
                words.as_mut_ptr(),
            ))?
        };
        let magnitude = u128::from(words[0]) | (u128::from(words[1]) << 64);
        Ok(if sign != 0 {
            format!("-{magnitude}")
        } else {
            magnitude.to_string()
        })
    }

    unsafe fn typed_array(&mut self, value: sys::napi_value) -> Result<Vec<u8>, PoolError> {
        let mut kind = 0;
        let mut length = 0usize;
        let mut data: *mut std::ffi::c_void = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut offset = 0usize;
        unsafe {
            self.status(sys::napi_get_typedarray_info(
                self.env,
                value,
                &mut kind,
                &mut length,
                &mut data,
                &mut buffer,
                &mut offset,
            ))?
        };
        let width = match kind {
            sys::TypedarrayType::int8_array
            | sys::TypedarrayType::uint8_array
            | sys::TypedarrayType::uint8_clamped_array => 1,
            sys::TypedarrayType::int16_array | sys::TypedarrayType::uint16_array => 2,
            sys::TypedarrayType::int32_array
            | sys::TypedarrayType::uint32_array
            | sys::TypedarrayType::float32_array => 4,
            _ => 8,
        };
        let bytes = length.saturating_mul(width);
        self.count_bytes(bytes)?;
        if bytes == 0 || data.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: napi gives the view's data pointer and length; the bytes are copied at once.
        Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), bytes) }.to_vec())
    }

    /// `JSON.stringify(value)`: its text, None when it gives `undefined` (a `toJSON` that
    /// returns nothing). A throw (a cycle, a `toJSON` that throws) is the parameter's refusal.
    unsafe fn json(&mut self, value: sys::napi_value) -> Result<Option<String>, PoolError> {
        let (json, stringify) = match self.stringify {
            Some(found) => found,
            None => {
                let global = unsafe { self.get(|env, out| sys::napi_get_global(env, out))? };
                let json = unsafe { self.property(global, c"JSON")? };
                let stringify = unsafe { self.property(json, c"stringify")? };
                *self.stringify.insert((json, stringify))
            }
        };
        let mut text = ptr::null_mut();
        let status =
            unsafe { sys::napi_call_function(self.env, json, stringify, 1, &value, &mut text) };
        if status == sys::Status::napi_pending_exception {
            let why = unsafe { self.take_exception() };
            return Err(self.refuse(format!("JSON.stringify failed: {why}")));
        }
        unsafe { self.status(status)? };
        match unsafe { self.type_of(text)? } {
            sys::ValueType::napi_string => Ok(Some(unsafe { self.string(text)? })),
            _ => Ok(None),
        }
    }

    unsafe fn property(
        &self,
        object: sys::napi_value,
        name: &std::ffi::CStr,
    ) -> Result<sys::napi_value, PoolError> {
        unsafe {
            self.get(|env, out| sys::napi_get_named_property(env, object, name.as_ptr(), out))
        }
    }

    /// Clears the pending exception and gives its message (`String(error)` of what was thrown).
    unsafe fn take_exception(&mut self) -> String {
        let mut error = ptr::null_mut();
        if unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut error) }
            != sys::Status::napi_ok
        {
            return "an exception".into();
        }
        let mut text = ptr::null_mut();
        if unsafe { sys::napi_coerce_to_string(self.env, error, &mut text) } != sys::Status::napi_ok
        {
            let _ = unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut error) };
            return "an exception".into();
        }
        let budget = (self.elements, self.bytes);
        let message = unsafe { self.string(text) }.unwrap_or_else(|_| "an exception".into());
        (self.elements, self.bytes) = budget;
        message
    }

    unsafe fn type_of(&self, value: sys::napi_value) -> Result<sys::napi_valuetype, PoolError> {
        unsafe { self.get(|env, out| sys::napi_typeof(env, value, out)) }
    }

    unsafe fn is_array(&self, value: sys::napi_value) -> Result<bool, PoolError> {
        unsafe { self.check(|env, out| sys::napi_is_array(env, value, out)) }
    }

    unsafe fn array_length(&self, value: sys::napi_value) -> Result<u32, PoolError> {
        unsafe { self.get(|env, out| sys::napi_get_array_length(env, value, out)) }
    }

    /// An element; a getter that throws is the parameter's refusal.
    unsafe fn element(
        &mut self,
        array: sys::napi_value,
        index: u32,
    ) -> Result<sys::napi_value, PoolError> {
        let mut element = ptr::null_mut();
        let status = unsafe { sys::napi_get_element(self.env, array, index, &mut element) };
        if status == sys::Status::napi_pending_exception {
            let why = unsafe { self.take_exception() };
            return Err(self.refuse(format!("reading element {index} threw: {why}")));
        }
        unsafe { self.status(status)? };
        Ok(element)
    }

    unsafe fn boolean(&self, value: sys::napi_value) -> Result<bool, PoolError> {
        unsafe { self.check(|env, out| sys::napi_get_value_bool(env, value, out)) }
    }

    unsafe fn number(&self, value: sys::napi_value) -> Result<f64, PoolError> {
        unsafe { self.get(|env, out| sys::napi_get_value_double(env, value, out)) }
    }

    unsafe fn check(
        &self,
        call: impl FnOnce(sys::napi_env, *mut bool) -> sys::napi_status,
    ) -> Result<bool, PoolError> {
        unsafe { self.get(call) }
    }

    unsafe fn get<T: Default>(
        &self,
        call: impl FnOnce(sys::napi_env, *mut T) -> sys::napi_status,
    ) -> Result<T, PoolError> {
        let mut out = T::default();
        unsafe { self.status(call(self.env, &mut out))? };
        Ok(out)
    }

    unsafe fn status(&self, status: sys::napi_status) -> Result<(), PoolError> {
        if status == sys::Status::napi_ok {
            Ok(())
        } else {
            Err(self.refuse(format!(
                "the value could not be read (napi status {status})"
            )))
        }
    }
}

/// `Date` → ISO 8601 UTC text, as `toISOString()` gives it (any valid Date: ±275760 years).
fn date_text(epoch_ms: f64) -> Result<String, &'static str> {
    if !epoch_ms.is_finite() {
        return Err("an Invalid Date cannot be sent");
    }
    let micros = (epoch_ms * 1000.0).round() as i64;
    let pg_micros = micros - 946_684_800_000_000; // 2000-01-01 in Unix µs
    Ok(crate::db::codec::datetime::format_timestamp(
        pg_micros, true,
    ))
}

fn invalid(message: impl Into<String>) -> PoolError {
    PoolError::InvalidArgument(message.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_whole_range_of_js_dates_is_text() {
        assert_eq!(super::date_text(0.0).unwrap(), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            super::date_text(8.64e15).unwrap(),
            "275760-09-13T00:00:00+00:00"
        );
        assert_eq!(
            super::date_text(-8.64e15).unwrap(),
            "271822-04-20T00:00:00+00:00 BC"
        );
        assert!(super::date_text(f64::NAN).is_err());
    }
}
