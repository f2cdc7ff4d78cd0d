//! Tests of the model, driving it through its registers and DMA memory
//! like a driver would.
