//! Restormer building blocks.
