//! What a program that embeds restoration needs, in one import:
//!
//! ```no_run
//! use dppd::prelude::*;
//!
//! fn main() -> dppd::Result<()> {
//!     let device = Device::flex();
//!     let model = Restorer::pretrained(&device)?;
//!     let photo = read_image("photo.jpg")?;
//!     let restored = model.restore_image(&photo, &RestoreOptions::default(), &device, |_, _| {})?;
//!     if let Some(d) = &restored.degradation {
//!         println!("{} (p = {:.2})", d.name, d.probability);
//!     }
//!     write_image("restored.png", &restored.image)
//! }
//! ```

pub use crate::data::{Image, read_image, write_image};
pub use crate::degrade::Task;
pub use crate::model::{DegradationPrediction, Restorer, RestorerConfig, TileConfig};
pub use crate::restore::{Restoration, RestoreOptions, restore_file, restore_folder};
pub use crate::{Error, Result, device_from_name};
pub use burn::tensor::Device;
