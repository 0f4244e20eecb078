//! Kiln's kernels against burn's own operations (the reference) on the software GPU: odd sizes,
//! channel counts that are not multiples of 8, borders, batches, both kernel sizes, the fused
//! upsampling, activation and residual, and the dense block against its `cat` form.
//!
//! Tolerance in f32: 1e-4 absolute + 1e-4 relative (different summation orders of up to 1728
//! products of values in [-1, 1]).

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

use super::*;
use crate::compute::{Expected, Priority, owner};
use crate::devices::GraphicsBackend;
use crate::devices::discovery::{ComputeTarget, WgpuSelector};

/// Runs `work` on the software GPU through its GL adapter (no cooperative matrices: the tiled
/// kernel runs), on the process's owner of that device, as Kiln's own work runs: tests running
/// at once take turns there instead of meeting inside cubecl (two tests' streams on this device
/// at once hung this binary on 2026-12-06; `compute::owner` says how).
pub(crate) fn on_software_gpu(work: impl FnOnce(&Device) + Send + 'static) {
    let target = ComputeTarget::Wgpu { backend: GraphicsBackend::Gl, selector: WgpuSelector::Cpu };
    let owner = owner::owner_for(target, "software GPU (GL)").expect("the owner starts");
    let expected = Expected::new(std::time::Duration::from_secs(600));
    if let Err(error) = owner.run("kernel test", Priority::Long, expected, work) {
        panic!("{error}");
    }
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}

/// burn's NCHW convolution with the same epilogue.
fn reference(
    input: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    slope: Tensor<1>,
    residual: Option<Tensor<4>>,
    op: ConvOp,
) -> Tensor<4> {
    let k = op.kernel;
    let [_, _, h, w] = input.dims();
    let input = if op.upsample > 1 {
        burn::tensor::module::interpolate(
            input,
            burn::tensor::ops::InterpolateOptions::new(burn::tensor::ops::InterpolateMode::Nearest)
                .with_output_size([h * op.upsample, w * op.upsample]),
        )
    } else {
        input
    };
    let out = conv2d(input, weight, Some(bias), ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1));
    let c = out.dims()[1];
    let slope = slope.reshape([1, c, 1, 1]);
    let negative = out.clone().lower_elem(0.0);
    let out = out.clone().mask_where(negative, out * slope).mul_scalar(op.scale);
    match residual {
        Some(r) => out + r,
        None => out,
    }
}

fn nhwc(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

fn assert_close(ours: Tensor<4>, expected: Tensor<4>, what: &str) {
    let ours: Vec<f32> = ours.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let expected: Vec<f32> = expected.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    assert_eq!(ours.len(), expected.len(), "{what}: sizes");
    let mut worst = 0.0f32;
    for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
        let error = (a - b).abs();
        assert!(error <= 1e-4 + 1e-4 * b.abs(), "{what}: element {i}: {a} against {b}");
        worst = worst.max(error);
    }
    eprintln!("{what}: largest error {worst:e}");
}

fn check_conv(shape: [usize; 4], out_channels: usize, op: ConvOp, with_residual: bool) {
    on_software_gpu(move |device| check_conv_on(device, shape, out_channels, op, with_residual));
}

fn check_conv_on(
    device: &Device,
    [batch, in_channels, height, width]: [usize; 4],
    out_channels: usize,
    op: ConvOp,
    with_residual: bool,
) {
    let device = device.clone();
    let input = random([batch, in_channels, height, width], &device);
    let weight = random([out_channels, in_channels, op.kernel, op.kernel], &device).mul_scalar(0.3);
    let bias = random([out_channels], &device);
    let slope = random([out_channels], &device);
    let residual =
        with_residual.then(|| random([batch, out_channels, height * op.upsample, width * op.upsample], &device));
    let expected = reference(input.clone(), weight.clone(), bias.clone(), slope.clone(), residual.clone(), op);
    let packed = pack_weight(weight);
    let ours = match residual {
        Some(r) => conv_residual(nhwc(input), packed, bias, slope, nhwc(r), op),
        None => conv(nhwc(input), packed, bias, slope, op),
    };
    let what = format!(
        "{batch}x{in_channels}x{height}x{width} -> {out_channels}, k{} up{} residual {with_residual}",
        op.kernel, op.upsample
    );
    assert_close(ours, nhwc(expected), &what);
}

#[test]
fn convolutions_match_burn_over_many_shapes() {
    let op = ConvOp::new(3);
    // Channels below, at and beyond a 16-deep stage; blocks of 64 pixels cut mid-row.
    check_conv([1, 3, 7, 9], 64, op, false);
    check_conv([2, 13, 5, 6], 3, op, false);
    check_conv([1, 64, 9, 11], 32, op, false);
    check_conv([1, 70, 4, 19], 48, op, false);
    check_conv([3, 17, 1, 1], 5, op, false);
    check_conv([1, 8, 13, 3], 96, op, false);
    check_conv([1, 16, 6, 7], 64, ConvOp::new(1), false);
    check_conv([2, 5, 3, 3], 7, ConvOp::new(1), true);
}

#[test]
fn fused_upsampling_scale_and_residual_match_burn() {
    check_conv([1, 64, 5, 7], 64, ConvOp { upsample: 2, ..ConvOp::new(3) }, false);
    check_conv([2, 6, 3, 4], 9, ConvOp { upsample: 2, ..ConvOp::new(3) }, true);
    check_conv([1, 12, 6, 5], 12, ConvOp { scale: 0.2, ..ConvOp::new(3) }, true);
}

#[test]
fn dense_block_matches_its_cat_form() {
    on_software_gpu(dense_block_on);
}

fn dense_block_on(device: &Device) {
    let device = device.clone();
    let (features, growth, convs) = (12, 5, 5);
    let block = DenseBlock { features, growth, convs, scale: 0.2, choice: KernelChoice::Best };
    let input = random([2, features, 6, 9], &device);
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    let mut slopes = Vec::new();
    let mut outputs = vec![input.clone()];
    for k in 0..convs {
        let (cin, cout) = (block.in_channels(k), block.out_channels(k));
        let weight = random([cout, cin, 3, 3], &device).mul_scalar(0.3);
        let bias = random([cout], &device);
        let last = k + 1 == convs;
        let slope = Tensor::<1>::full([cout], if last { 1.0 } else { 0.2 }, &device);
        let op = ConvOp::new(3);
        let out = reference(Tensor::cat(outputs.clone(), 1), weight.clone(), bias.clone(), slope.clone(), None, op);
        outputs.push(out);
        weights.push(pack_weight(weight).reshape([9 * cin * conv::padded(cout)]));
        biases.push(bias);
        slopes.push(slope);
    }
    let expected = outputs.pop().unwrap().mul_scalar(0.2) + input.clone();
    let ours = dense_block(nhwc(input), Tensor::cat(weights, 0), Tensor::cat(biases, 0), Tensor::cat(slopes, 0), block);
    assert_close(ours, nhwc(expected), "dense block");
}

#[test]
fn images_with_more_blocks_than_one_grid_dimension_holds() {
    // 2100² pixels are 68 907 blocks of 64: past the 65 535 groups of one dispatch dimension.
    check_conv([1, 1, 2100, 2100], 2, ConvOp::new(3), false);
}
