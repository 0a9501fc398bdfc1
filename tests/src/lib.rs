//! Fixtures for Tether's end-to-end suite.
