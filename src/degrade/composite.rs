//! Several degradations in one image, in a fixed physical order.

use rand::Rng;

use super::{Degradation, DepthMap};
use crate::base::image::Image;

/// A composite degradation: its stages are applied one after another in the fixed order of
/// [`Degradation::stage_rank`] — low light → haze → rain → motion blur → defocus → noise →
/// JPEG — whatever order they were given in. This is the order CDD-11 composes its mixtures
/// (low light, haze, rain, snow) and the order the physics implies: the scene is dark and hazy,
/// rain falls in front of it, the camera blurs and adds noise, the file is compressed last.
#[derive(Clone, Debug, PartialEq)]
pub struct Composite {
    stages: Vec<Degradation>,
}

impl Composite {
    /// A composite of `stages`, sorted into the fixed order (stable for equal ranks; nested
    /// composites are flattened).
    pub fn new(stages: impl IntoIterator<Item = Degradation>) -> Self {
        let mut flat = Vec::new();
        for s in stages {
            match s {
                Degradation::Composite(c) => flat.extend(c.stages),
                other => flat.push(other),
            }
        }
        flat.sort_by_key(Degradation::stage_rank);
        Self { stages: flat }
    }

    /// The stages in the order they are applied.
    pub fn stages(&self) -> &[Degradation] {
        &self.stages
    }

    /// Applies every stage in order; `depth` goes to the haze stage.
    pub fn apply_with_depth<R: Rng + ?Sized>(
        &self,
        image: &Image,
        depth: Option<&DepthMap>,
        rng: &mut R,
    ) -> Image {
        let mut out = image.clone();
        for stage in &self.stages {
            out = stage.apply_with_depth(&out, depth, rng);
        }
        out
    }
}
