//! The synthetic degradation of each [`Task`].

use super::{
    Composite, DefocusBlur, Degradation, GaussianNoise, Haze, Jpeg, LowLight, MotionBlur, Rain,
};
pub use crate::base::task::Task;

impl Task {
    /// The default synthetic degradation for this task (table above).
    pub fn degradation(self) -> Degradation {
        let low = || Degradation::LowLight(LowLight::default());
        let haze = || Degradation::Haze(Haze::default());
        let rain = || Degradation::Rain(Rain::light());
        match self {
            Task::Denoise15 => Degradation::Noise(GaussianNoise::new(15.0)),
            Task::Denoise25 => Degradation::Noise(GaussianNoise::new(25.0)),
            Task::Denoise50 => Degradation::Noise(GaussianNoise::new(50.0)),
            Task::Derain => rain(),
            Task::Dehaze => haze(),
            Task::Deblur => Degradation::MotionBlur(MotionBlur::default()),
            Task::LowLight => low(),
            Task::Defocus => Degradation::Defocus(DefocusBlur::default()),
            Task::Jpeg => Degradation::Jpeg(Jpeg::default()),
            Task::DenoiseBlind => Degradation::Noise(GaussianNoise::blind(0.0, 55.0)),
            Task::LowHaze => Degradation::Composite(Composite::new([low(), haze()])),
            Task::LowRain => Degradation::Composite(Composite::new([low(), rain()])),
            Task::HazeRain => Degradation::Composite(Composite::new([haze(), rain()])),
            Task::LowHazeRain => Degradation::Composite(Composite::new([low(), haze(), rain()])),
            Task::Clean => Degradation::Composite(Composite::new([])),
            Task::Denoise10 => Degradation::Noise(GaussianNoise::new(10.0)),
            Task::Denoise35 => Degradation::Noise(GaussianNoise::new(35.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::image::Image;

    #[test]
    fn the_clean_task_leaves_the_image_as_it_is() {
        let img = Image::from_planar(4, 3, vec![0.25; 36]).unwrap();
        assert_eq!(Task::Clean.degradation().apply_seeded(&img, 7), img);
        assert_eq!(
            Task::Denoise25.degradation(),
            Degradation::Noise(GaussianNoise::new(25.0))
        );
    }
}
