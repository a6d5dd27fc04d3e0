//! Prompt modules.
