//! The all-in-one network.
