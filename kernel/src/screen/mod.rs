//! What the display shows, without the display: the 5x7 [`font`] and the GC dashboard's
//! [`layout`] for any display size. The kernel draws with both; xtask's screenshot tests use them
//! to find and read the dashboard's regions in a PNG.

pub mod font;
pub mod layout;
