//! Images in and out, datasets, crops and flips, batching.
//!
//! - [`Image`]: planar RGB `f32` on the CPU, with tensor conversions;
//!   [`read_image`] / [`write_image`] for PNG, JPEG, WebP, TIFF and BMP files (rules in the
//!   [`io`] docs);
//! - [`RestoreDataset`]: `(degraded, clean, label)` samples from [`Entry`]s, in training mode
//!   (random crops and flips) or test mode (whole images, fixed seeds);
//! - entries: synthetic from any photo folder ([`synthetic_entries`], a [`TaskMix`]) or paired
//!   layouts ([`rain100l`], [`sots_outdoor`], [`promptir_train`]), balanced with [`balance`];
//! - [`Loader`]: worker threads, seeded order, [`Batch`]es of tensors.

mod augment;
mod dataset;
pub use crate::base::io;
mod layout;
mod loader;

pub use crate::base::image::{Image, images_to_tensor, labels_to_tensor, tensor_to_images};
pub use augment::{Dihedral, random_crop_origin};
pub use dataset::{
    Augment, Entry, MixItem, Mode, RestoreDataset, Sample, Source, TaskMix, balance, list_images,
    promptir_weights, synthetic_entries,
};
pub use io::{
    FileFormat, ImageInfo, PixelFormat, read_depth, read_image, read_image_with_info, write_image,
    write_image_as, write_image_with_quality,
};
pub use layout::{promptir_train, rain100l, same_name_pairs, sots_outdoor};
pub use loader::{Batch, EpochIter, Loader, LoaderConfig};

#[cfg(test)]
mod tests;
