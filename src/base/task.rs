//! Named restoration tasks with stable labels (their synthetic degradations are in
//! `degrade`: `Task::degradation`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::Error;

/// A restoration task: a degradation type with a stable string name and integer label, so
/// datasets can emit labels and configurations can name tasks.
///
/// Labels 0–5 are PromptIR's (`de_dict` in its `utils/dataset_utils.py`); the others follow.
/// Names and labels never change once released; new tasks get new labels.
///
/// | label | name | synthetic degradation (`Task::degradation`, in `degrade`) |
/// |---|---|---|
/// | 0 | `denoise_15` | Gaussian noise σ = 15 |
/// | 1 | `denoise_25` | Gaussian noise σ = 25 |
/// | 2 | `denoise_50` | Gaussian noise σ = 50 |
/// | 3 | `derain` | rain streaks, [`Rain::light`] (Rain100L-like) |
/// | 4 | `dehaze` | [`Haze::default`] |
/// | 5 | `deblur` | [`MotionBlur::default`] |
/// | 6 | `low_light` | [`LowLight::default`] |
/// | 7 | `defocus` | [`DefocusBlur::default`] |
/// | 8 | `jpeg` | [`Jpeg::default`] |
/// | 9 | `denoise_blind` | Gaussian noise σ ~ U(0, 55) |
/// | 10 | `low_haze` | low light + haze |
/// | 11 | `low_rain` | low light + rain |
/// | 12 | `haze_rain` | haze + rain |
/// | 13 | `low_haze_rain` | low light + haze + rain |
/// | 14 | `clean` | none (an empty [`Composite`]: the input is the clean image) |
/// | 15 | `denoise_10` | Gaussian noise σ = 10 |
/// | 16 | `denoise_35` | Gaussian noise σ = 35 |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Task {
    /// Gaussian noise σ = 15.
    Denoise15,
    /// Gaussian noise σ = 25.
    Denoise25,
    /// Gaussian noise σ = 50.
    Denoise50,
    /// Rain streaks.
    Derain,
    /// Haze.
    Dehaze,
    /// Motion blur.
    Deblur,
    /// Low light.
    LowLight,
    /// Defocus blur.
    Defocus,
    /// JPEG artefacts.
    Jpeg,
    /// Gaussian noise of unknown σ.
    DenoiseBlind,
    /// Low light + haze (CDD-11 style composite).
    LowHaze,
    /// Low light + rain.
    LowRain,
    /// Haze + rain.
    HazeRain,
    /// Low light + haze + rain.
    LowHazeRain,
    /// No degradation: the input is the clean image. Trained so that a network returns a
    /// photograph it has nothing to remove from unchanged (and can say so: family `clean`).
    Clean,
    /// Gaussian noise σ = 10 (between the trained levels: a test of generalisation).
    Denoise10,
    /// Gaussian noise σ = 35 (between the trained levels: a test of generalisation).
    Denoise35,
}

impl Task {
    /// Every task, in label order.
    pub const ALL: [Task; 17] = [
        Task::Denoise15,
        Task::Denoise25,
        Task::Denoise50,
        Task::Derain,
        Task::Dehaze,
        Task::Deblur,
        Task::LowLight,
        Task::Defocus,
        Task::Jpeg,
        Task::DenoiseBlind,
        Task::LowHaze,
        Task::LowRain,
        Task::HazeRain,
        Task::LowHazeRain,
        Task::Clean,
        Task::Denoise10,
        Task::Denoise35,
    ];

    /// The paper's 3-task setting (PromptIR, DPPD): denoise σ15, σ25, σ50, derain, dehaze.
    pub const THREE_TASK: [Task; 5] = [
        Task::Denoise15,
        Task::Denoise25,
        Task::Denoise50,
        Task::Derain,
        Task::Dehaze,
    ];

    /// The 5-task setting: denoise σ25, derain, dehaze, deblur (GoPro), low light (LOL).
    pub const FIVE_TASK: [Task; 5] = [
        Task::Denoise25,
        Task::Derain,
        Task::Dehaze,
        Task::Deblur,
        Task::LowLight,
    ];

    /// The stable integer label.
    pub fn label(self) -> usize {
        self as usize
    }

    /// The task with this label.
    pub fn from_label(label: usize) -> Option<Task> {
        Self::ALL.get(label).copied()
    }

    /// The stable string name (`denoise_15`, `derain`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Task::Denoise15 => "denoise_15",
            Task::Denoise25 => "denoise_25",
            Task::Denoise50 => "denoise_50",
            Task::Derain => "derain",
            Task::Dehaze => "dehaze",
            Task::Deblur => "deblur",
            Task::LowLight => "low_light",
            Task::Defocus => "defocus",
            Task::Jpeg => "jpeg",
            Task::DenoiseBlind => "denoise_blind",
            Task::LowHaze => "low_haze",
            Task::LowRain => "low_rain",
            Task::HazeRain => "haze_rain",
            Task::LowHazeRain => "low_haze_rain",
            Task::Clean => "clean",
            Task::Denoise10 => "denoise_10",
            Task::Denoise35 => "denoise_35",
        }
    }

    /// The degradation family: the name of the DPA prototype the task's samples are pulled
    /// to ([`RestorerConfig::degradations`](crate::model::RestorerConfig::degradations)).
    /// Every noise level is `noise`; `derain` is `rain`, `dehaze` `haze`, `deblur` `blur`,
    /// `defocus` `defocus`, `low_light` `low_light`, `jpeg` `jpeg`, `clean` `clean`; a composite
    /// is a family of its own, named like the task (`low_haze`, ...).
    pub fn family(self) -> &'static str {
        match self {
            Task::Denoise10
            | Task::Denoise15
            | Task::Denoise25
            | Task::Denoise35
            | Task::Denoise50
            | Task::DenoiseBlind => "noise",
            Task::Derain => "rain",
            Task::Dehaze => "haze",
            Task::Deblur => "blur",
            Task::LowLight => "low_light",
            Task::Defocus => "defocus",
            Task::Jpeg => "jpeg",
            Task::Clean => "clean",
            Task::LowHaze | Task::LowRain | Task::HazeRain | Task::LowHazeRain => self.name(),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
                Error::Config(format!(
                    "unknown task {s:?}; known tasks: {}",
                    names.join(", ")
                ))
            })
    }
}

impl TryFrom<String> for Task {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Task> for String {
    fn from(t: Task) -> String {
        t.name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_stable() {
        let expected = [
            "denoise_15",
            "denoise_25",
            "denoise_50",
            "derain",
            "dehaze",
            "deblur",
        ];
        for (label, name) in expected.iter().enumerate() {
            let t: Task = name.parse().unwrap();
            assert_eq!(t.label(), label);
            assert_eq!(Task::from_label(label), Some(t));
        }
        for t in Task::ALL {
            assert_eq!(t.name().parse::<Task>().unwrap(), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert!("rain".parse::<Task>().is_err());
        let families: Vec<&str> = Task::THREE_TASK.iter().map(|t| t.family()).collect();
        assert_eq!(families, ["noise", "noise", "noise", "rain", "haze"]);
        assert_eq!(Task::DenoiseBlind.family(), "noise");
        assert_eq!(Task::Deblur.family(), "blur");
        assert_eq!(Task::Clean.family(), "clean");
        assert_eq!(Task::Clean.label(), 14);
        assert_eq!(Task::from_label(Task::ALL.len()), None);
    }
}
