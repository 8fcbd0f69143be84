//! The controller's driver: placeholder filled in below.
