//! Tether's end-to-end suite: one test binary.
