//! Containing panics of third-party decoders.
//!
//! A decoder should return an error for any malformed input, but decoders have bugs: fuzzing
//! found `zune-jpeg` 0.5.15 (the `image` crate's JPEG decoder, latest compatible release)
//! panicking on a 437-byte JPEG (`tests/data/fuzz/`). [`contain`] runs such a decoder and turns
//! a panic into an error message, without the panic's report on standard error. A panic of the
//! crate's own code elsewhere is reported as usual.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contain`]: its panics are expected and reported as
    /// errors, not printed.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`; a panic inside it becomes `Err(message)`. `f` must own or only read what it
/// touches (it is not run again, and nothing it half-built is used afterwards).
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        // wrap whatever hook is installed now (the default one, or the application's): it
        // still sees every panic outside `contain`
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_next_call_works() {
        let e = contain(|| -> u8 { panic!("decoder bug {}", 7) }).unwrap_err();
        assert_eq!(e, "decoder bug 7");
        assert_eq!(contain(|| 5).unwrap(), 5);
        assert!(!CONTAINED.with(Cell::get));
    }
}
