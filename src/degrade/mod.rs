//! Synthetic degradations: noise, rain, haze, blur, low light, JPEG.
