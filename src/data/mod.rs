//! Image I/O, datasets, crops and flips, batching.
