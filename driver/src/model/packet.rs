//! Frame parsing and checksums for the receive classifier and the transmit
//! offloads.
