//! Probe address policy: to be written.
