//! The building blocks both upscalers share: 3×3 convolutions with bias, pixel (un)shuffle and
//! nearest-neighbour ×2 upsampling, as PyTorch defines them (`nn.Conv2d(k=3, p=1)`,
//! `F.pixel_shuffle`, `F.pixel_unshuffle`, `F.interpolate(mode="nearest")`).

use burn::tensor::Tensor;
use burn::tensor::module::{conv2d, interpolate};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions};

/// A 3×3 convolution, stride 1, padding 1, with bias.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    /// `[out, in, 3, 3]`
    pub weight: Tensor<4>,
    /// `[out]`
    pub bias: Tensor<1>,
}

impl Conv3x3 {
    /// # Shapes
    /// `[n, in, h, w]` -> `[n, out, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(x, self.weight.clone(), Some(self.bias.clone()), ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }
}

/// `[n, c·r², h, w]` -> `[n, c, h·r, w·r]`
pub fn pixel_shuffle(x: Tensor<4>, r: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let out = c / (r * r);
    x.reshape([n, out, r, r, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([n, out, h * r, w * r])
}

/// `[n, c, h·r, w·r]` -> `[n, c·r², h, w]` (the inverse of [`pixel_shuffle`]).
pub fn pixel_unshuffle(x: Tensor<4>, r: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (h / r, w / r);
    x.reshape([n, c, oh, r, ow, r]).permute([0, 1, 3, 5, 2, 4]).reshape([n, c * r * r, oh, ow])
}

/// Nearest-neighbour upsampling by an integer factor.
pub fn upsample_nearest(x: Tensor<4>, factor: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h * factor, w * factor]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn shuffle_and_unshuffle_invert_each_other_like_pytorch() {
        let device = Device::flex();
        // One channel of 2x2 blocks: pixel_unshuffle puts each block's four pixels into four
        // channels, in PyTorch's (row, column) order.
        let x = Tensor::<4>::from_data(
            TensorData::new((0..16).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 4, 4]),
            &device,
        );
        let down = pixel_unshuffle(x.clone(), 2);
        assert_eq!(down.dims(), [1, 4, 2, 2]);
        let first: Vec<f32> = down.clone().slice([0..1, 0..4, 0..1, 0..1]).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(first, vec![0.0, 1.0, 4.0, 5.0]);
        let back: Vec<f32> = pixel_shuffle(down, 2).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(back, (0..16).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn nearest_upsampling_repeats_pixels() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &device);
        let up: Vec<f32> = upsample_nearest(x, 2).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(up[..4], [1.0, 1.0, 2.0, 2.0]);
        assert_eq!(up[12..], [3.0, 3.0, 4.0, 4.0]);
    }
}
