//! tricolor-virtio: under construction (see the open issues).
#![cfg_attr(not(test), no_std)]
